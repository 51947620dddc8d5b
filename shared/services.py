"""The ports a rollout's activities work through, as one value: built by ``shared.bootstrap``, used by handlers.

Kept apart from the wiring so that handlers depend on the ports only, never on how adapters are chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from .adapters.memory_leases import InMemoryLeases
from .adapters.memory_outcomes import InMemoryOutcomePublisher
from .ports import (
    DiskSnapshots,
    FailureModel,
    Fleet,
    Leases,
    LongOperations,
    OutcomePublisher,
    RolloutStore,
    ShadowLoad,
    ShadowPool,
    Telemetry,
)


@dataclass
class Services:
    fleet: Fleet
    shadows: ShadowPool
    shadow_load: ShadowLoad
    snapshots: DiskSnapshots
    telemetry: Telemetry
    model: FailureModel
    store: RolloutStore
    now: Callable[[], datetime]
    operations: LongOperations
    # in-process defaults; in Azure both must be shared by every worker (Table leases, a Service Bus topic)
    leases: Leases = field(default_factory=InMemoryLeases)
    outcomes: OutcomePublisher = field(default_factory=InMemoryOutcomePublisher)
