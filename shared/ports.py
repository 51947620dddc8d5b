"""Ports: what the rollout needs from the world, named for what it does.

The simulator and the Azure SDK adapters both implement these; the domain and the orchestration see only
these signatures. Every call that changes something in Azure is a batch, so an adapter can run the
long-running operations in parallel and an activity's history entry stays small.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .domain.decisions import VmRisk
from .domain.judge import StratumVerdict
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


class ShadowPool(ABC):
    """Spot clones of production VMs, made from snapshots of their disks."""

    @abstractmethod
    def create(self, plans: Sequence[ShadowPlan], *, rollout_id: str, spot_fallback: str) -> list[ShadowInfo]:
        """Create one shadow per plan; a refused or failed one comes back with state FAILED and a message."""

    @abstractmethod
    def status(self, shadow_ids: Sequence[str]) -> dict[str, ShadowState]: ...

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
    def predict(self, vms: Sequence[VmInfo], evidence: Mapping[str, StratumVerdict]) -> list[VmRisk]: ...


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
