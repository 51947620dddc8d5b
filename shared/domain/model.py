"""Fleet, strata, changes and the results of operations on them.

Everything here crosses Durable Functions boundaries as plain JSON, so every type has an explicit
``to_dict``/``from_dict`` pair instead of relying on a generic serialiser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np


class Config(StrEnum):
    """Which configuration a VM runs."""

    OLD = "old"
    NEW = "new"


class ApplyStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"


def _flat(value: Any) -> dict[str, Any]:
    """A flat dataclass's fields as they are (each a str, number, bool, None or enum): ``asdict``'s recursive deep
    copy of the same made a tenth of a 10,000-VM run's store writes."""
    return dict(vars(value))


@dataclass(frozen=True, order=True)
class Stratum:
    """A distinct (scale set, SKU, image, zone) among the production VMs."""

    scale_set: str
    sku: str
    image: str
    zone: str

    @property
    def key(self) -> str:
        return f"{self.scale_set}|{self.sku}|{self.image}|{self.zone}"

    @property
    def label(self) -> str:
        sku = self.sku.removeprefix("Standard_")
        return f"{self.scale_set}/{sku}/{self.image}/z{self.zone}"

    @property
    def twin_group(self) -> str:
        """Strata that differ only by zone share untouched control twins."""
        return f"{self.scale_set}|{self.sku}|{self.image}"

    @classmethod
    def from_key(cls, key: str) -> Stratum:
        scale_set, sku, image, zone = key.split("|")
        return cls(scale_set, sku, image, zone)


@dataclass(frozen=True)
class VmInfo:
    """One production VM as the inventory sees it."""

    vm_id: str
    scale_set: str
    sku: str
    image: str
    zone: str
    orchestration: str = "Flexible"
    os_disk_id: str = ""

    @property
    def stratum(self) -> Stratum:
        return Stratum(self.scale_set, self.sku, self.image, self.zone)

    def to_dict(self) -> dict[str, Any]:
        return _flat(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VmInfo:
        return cls(**d)


@dataclass(frozen=True)
class ChangeSpec:
    """The proposed configuration change. The payload is opaque to the rollout logic."""

    change_id: str
    kind: str = "run-command"
    payload: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"change_id": self.change_id, "kind": self.kind, "payload": dict(self.payload)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChangeSpec:
        return cls(d["change_id"], d.get("kind", "run-command"), dict(d.get("payload", {})))


@dataclass(frozen=True)
class ApplyResult:
    vm_id: str
    status: ApplyStatus
    exit_code: int | None
    duration_s: float
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**_flat(self), "status": self.status.value}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ApplyResult:
        return cls(d["vm_id"], ApplyStatus(d["status"]), d["exit_code"], d["duration_s"], d.get("message", ""))


@dataclass(frozen=True)
class ShadowPlan:
    """A production VM chosen to be cloned into the shadow pool."""

    source_vm_id: str
    stratum_key: str
    sku: str
    zone: str
    role: str = "treated"
    """``treated`` shadows get the change; ``control`` twins do not, and show what changes without it."""
    ordinal: int | None = None
    """The plan's place in its rollout's pool (1-based), when known: chunks that create shadows at the same
    time name them by it, so the names do not depend on which chunk ran first."""

    def to_dict(self) -> dict[str, Any]:
        d = _flat(self)
        if self.ordinal is None:
            del d["ordinal"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShadowPlan:
        return cls(**d)


class ShadowState(StrEnum):
    RUNNING = "running"
    EVICTING = "evicting"  # Spot eviction notice received (at least 30 s ahead)
    EVICTED = "evicted"
    FAILED = "failed"
    DELETED = "deleted"


@dataclass(frozen=True)
class ShadowInfo:
    """A shadow VM as created: it may run on another SKU or at regular price if Spot was refused."""

    shadow_id: str
    source_vm_id: str
    stratum_key: str
    sku: str
    zone: str
    spot: bool
    state: ShadowState
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**_flat(self), "state": self.state.value}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShadowInfo:
        return cls(**{**d, "state": ShadowState(d["state"])})


@dataclass(frozen=True)
class SnapshotInfo:
    vm_id: str
    snapshot_id: str
    disk_id: str

    def to_dict(self) -> dict[str, Any]:
        return _flat(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SnapshotInfo:
        return cls(**d)


@dataclass(frozen=True)
class RestoreResult:
    vm_id: str
    ok: bool
    attempts: int
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _flat(self)


SIGNALS: tuple[str, ...] = ("cpu_pct", "mem_available_pct", "net_bytes", "error_count", "health_ok")
"""The per-minute signals every telemetry adapter returns, one row per VM."""


@dataclass
class SignalFrame:
    """Per-minute signals of several VMs over one window; NaN marks a missing point.

    Column ``k`` holds the minute that starts at ``start + k minutes``; rows follow ``vm_ids``.
    """

    vm_ids: list[str]
    start: datetime
    signals: dict[str, np.ndarray]

    @property
    def width(self) -> int:
        return next(iter(self.signals.values())).shape[1] if self.signals else 0

    def rows(self, vm_ids: list[str]) -> SignalFrame:
        index = {v: i for i, v in enumerate(self.vm_ids)}
        idx = np.array([index[v] for v in vm_ids], dtype=np.int64)
        return SignalFrame(list(vm_ids), self.start, {k: a[idx] for k, a in self.signals.items()})

    def between(self, start: datetime, end: datetime) -> SignalFrame:
        """The columns of minutes in [start, end)."""
        a = max(0, int((start - self.start) / timedelta(minutes=1)))
        b = max(a, int((end - self.start) / timedelta(minutes=1)))
        return SignalFrame(list(self.vm_ids), self.start + timedelta(minutes=a),
                           {k: v[:, a:b] for k, v in self.signals.items()})
