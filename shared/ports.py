"""Ports: what the rollout needs from the world, named for what it does.

The simulator and the Azure SDK adapters both implement these; the domain and the orchestration see only
these signatures. Every call that changes something in Azure is a batch, so an adapter can run the
long-running operations in parallel and an activity's history entry stays small.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .domain.decisions import VmRisk
from .domain.features import FeatureTable
from .domain.model import (
    ApplyResult,
    ChangeSpec,
    RestoreResult,
    ShadowInfo,
    ShadowPlan,
    ShadowState,
    SignalFrame,
    SnapshotInfo,
    VmInfo,
)


class Fleet(ABC):
    """The production scale sets: inventory, the change itself, restore, scripts and capacity."""

    @abstractmethod
    def inventory(self, scale_set_ids: Sequence[str]) -> list[VmInfo]: ...

    @abstractmethod
    def apply_change(self, vm_ids: Sequence[str], change: ChangeSpec, *, timeout_minutes: float) -> list[ApplyResult]:
        """Apply the change to each VM in parallel; a VM whose apply fails or hangs is reported, not raised."""

    @abstractmethod
    def restore_from_snapshots(self, snapshots: Sequence[SnapshotInfo]) -> list[RestoreResult]:
        """Bring each VM back to the state of its pre-change snapshot."""

    @abstractmethod
    def run_script(self, vm_ids: Sequence[str], script: str) -> dict[str, bool]: ...

    @abstractmethod
    def capacity(self, scale_set_id: str) -> int: ...

    @abstractmethod
    def set_capacity(self, scale_set_id: str, capacity: int) -> int: ...

    def tags(self, scale_set_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Each scale set's resource tags, for scope rules on tags.

        Not abstract so that an adapter without it still works; scope rules that name tags then fail closed
        (the request is rejected, saying the tags could not be read).
        """
        raise NotImplementedError(f"{type(self).__name__} cannot read resource tags")


class ShadowPool(ABC):
    """Spot clones of production VMs, made from snapshots of their disks."""

    @abstractmethod
    def create(self, plans: Sequence[ShadowPlan], *, rollout_id: str, spot_fallback: str,
               max_regular: int | None = None) -> list[ShadowInfo]:
        """Create one shadow per plan; a refused or failed one comes back with state FAILED and a message.

        Where Spot is refused: ``regular`` makes a regular-priced VM (at most ``max_regular`` in this call),
        ``family`` a Spot VM of the nearest other size of the same series, ``skip`` nothing.
        """

    @abstractmethod
    def status(self, shadow_ids: Sequence[str]) -> dict[str, ShadowState]: ...

    @abstractmethod
    def tagged(self) -> dict[str, str]:
        """Every shadow not yet deleted, with the label of the rollout that made it (its tag): what a janitor
        looks for when a rollout could not delete its shadows."""

    @abstractmethod
    def teardown(self, shadow_ids: Sequence[str]) -> int:
        """Delete shadows with their disks and snapshots; idempotent."""


class ShadowLoad(ABC):
    """Synthetic load on shadows, so that load-dependent faults can show before production does."""

    @abstractmethod
    def drive(self, targets: Mapping[str, float]) -> None:
        """Run a load generator on each shadow at the given utilisation (0..1)."""


class DiskSnapshots(ABC):
    @abstractmethod
    def snapshot(self, vm_ids: Sequence[str], *, tag: str) -> list[SnapshotInfo]:
        """Incremental snapshots of each VM's managed disks, private (no public network access).

        A VM whose snapshot could not be made is missing from the result.
        """


class Telemetry(ABC):
    @abstractmethod
    def signals(self, vm_ids: Sequence[str], start: datetime, end: datetime) -> SignalFrame:
        """Per-minute CPU, memory, network, error-log and health-probe signals for [start, end)."""


class FailureModel(ABC):
    """For every production VM, how likely the change is to fail there."""

    name: str = "model"

    @abstractmethod
    def predict(self, table: FeatureTable) -> list[VmRisk]:
        """One risk per row, in order; a row the model cannot score falls back to the judge, saying why."""


class RolloutStore(ABC):
    """Durable state of rollouts: the record, per-item tables, decisions. JSON-able dicts only."""

    @abstractmethod
    def put_rollout(self, rollout_id: str, record: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def get_rollout(self, rollout_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def put_items(self, rollout_id: str, kind: str, items: Mapping[str, Mapping[str, Any]]) -> None:
        """Upsert items of one kind (vm, shadow, snapshot, rollback, wave...) keyed by id."""

    @abstractmethod
    def get_items(self, rollout_id: str, kind: str) -> dict[str, dict[str, Any]]:
        """All items of one kind. Treat them as read-only: change an item by writing it with put_items."""

    @abstractmethod
    def add_decisions(self, rollout_id: str, decisions: Sequence[Mapping[str, Any]]) -> None: ...

    @abstractmethod
    def decisions(self, rollout_id: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    def rollout_ids(self) -> list[str]:
        """Every rollout the store holds (the failure model's training history)."""


# ---------------------------------------------------------------------------------------------- intake & control
TERMINAL_STATES = frozenset({"Completed", "Failed", "Terminated", "Canceled"})


@dataclass(frozen=True)
class InstanceStatus:
    """An orchestration instance as the Durable client reports it (``runtime_status`` uses its names)."""

    instance_id: str
    name: str
    runtime_status: str
    created_at: datetime | None = None
    last_updated_at: datetime | None = None
    custom_status: Any = None
    output: Any = None

    @property
    def terminal(self) -> bool:
        return self.runtime_status in TERMINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "name": self.name, "runtime_status": self.runtime_status,
                "created_at": self.created_at.isoformat() if self.created_at else None,
                "last_updated_at": self.last_updated_at.isoformat() if self.last_updated_at else None,
                "custom_status": self.custom_status, "output": self.output}


@dataclass(frozen=True)
class StartResult:
    """What :meth:`Orchestrations.start` did: started a new instance, or found one with that id."""

    instance_id: str
    started: bool
    existing: InstanceStatus | None = None


class Orchestrations(ABC):
    """Start, query and steer orchestration instances: the Durable client, seen by the triggers.

    Async because the Durable client is. ``start`` never starts a second instance with an id already used,
    whether that instance is running or finished: redelivered input must find what it started.
    """

    @abstractmethod
    async def start(self, name: str, instance_id: str, input_: Any) -> StartResult: ...

    @abstractmethod
    async def status(self, instance_id: str) -> InstanceStatus | None: ...

    @abstractmethod
    async def raise_event(self, instance_id: str, event_name: str, data: Any) -> None: ...

    @abstractmethod
    async def terminate(self, instance_id: str, reason: str) -> None: ...

    @abstractmethod
    async def list(self, *, name: str | None = None, created_from: datetime | None = None,
                   limit: int = 50) -> list[InstanceStatus]:
        """Instances, newest first; ``name`` keeps one orchestrator's (e.g. top-level rollouts only)."""


@dataclass(frozen=True)
class LeaseConflict:
    resource: str
    holder: str
    since: str


@dataclass
class LeaseResult:
    acquired: bool
    conflicts: list[LeaseConflict] = field(default_factory=list)


class Leases(ABC):
    """Exclusive claims on scale sets, so that two rollouts never change the same scale set at once.

    ``acquire`` is all-or-nothing and atomic (Table storage: conditional inserts, undone on conflict); a
    holder acquiring what it already holds succeeds. Resource ids compare case-insensitively, as in ARM.
    """

    @abstractmethod
    def acquire(self, resources: Sequence[str], holder: str, *, now: datetime) -> LeaseResult: ...

    @abstractmethod
    def holders(self, resources: Sequence[str]) -> dict[str, LeaseConflict]:
        """Current holders of those resources that are held (keyed by the lower-cased resource id)."""

    @abstractmethod
    def release(self, holder: str, resources: Sequence[str] | None = None) -> int:
        """Release what ``holder`` holds (all of it when ``resources`` is None); returns how many."""


class OutcomePublisher(ABC):
    """Publishes rollout outcomes (completed, halted, rolled back, rejected...) for DevOps gates and others.

    Events are JSON-able dicts with an ``event_id`` that is stable across retries: consumers deduplicate on it.
    """

    @abstractmethod
    def publish(self, event: dict[str, Any]) -> None: ...
