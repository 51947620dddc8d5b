"""Ports: what the rollout needs from the world, named for what it does.

The simulator and the Azure SDK adapters both implement these; the domain and the orchestration see only
these signatures. Every call that changes something in Azure is a batch, so an adapter can run the
long-running operations in parallel and an activity's history entry stays small.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from .domain.errors import StaleWrite
from .domain.registry import ModelInUse, ModelSource, PromotedPointer, Promotion
from .domain.scale_set_limits import ScaleSetSize

if TYPE_CHECKING:  # annotations only: the numpy-backed domain stays out of what the publisher imports
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
    from .domain.operations import OperationHandle, OperationStatus


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
    def set_capacity(self, scale_set_id: str, capacity: int) -> int:
        """Set the scale set's instance count; a count ARM refuses (above its maximum) raises
        ``CapacityUnavailable`` and changes nothing."""

    @abstractmethod
    def max_capacity(self, scale_set_id: str) -> int:
        """The most instances the scale set may hold (shared/domain/scale_set_limits.py)."""

    def size(self, scale_set_id: str) -> ScaleSetSize:
        """The scale set's capacity and maximum together (a scale-out needs both): an adapter that reads both
        from one answer overrides this, which otherwise asks twice."""
        return ScaleSetSize(self.capacity(scale_set_id), self.max_capacity(scale_set_id))

    def guest_extensions(self, scale_set_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        """Each scale set's VM extensions in its model (names and types), for the guest prerequisites
        (shared/domain/guest.py). Not abstract, like ``tags``: an adapter without it fails closed (the rollout
        is refused, saying the prerequisites could not be checked)."""
        raise NotImplementedError(f"{type(self).__name__} cannot read the scale sets' VM extensions")

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

    @abstractmethod
    def delete_tagged(self, tag: str, resource_groups: Sequence[str]) -> int:
        """Delete every snapshot ``snapshot`` made with ``tag`` in these resource groups (disks' snapshots too);
        the number deleted. Idempotent: a second call deletes nothing."""


@dataclass(frozen=True)
class RestoreOutcome:
    """A restore operation's results: each VM's restore and, for those restored, its post-rollback script."""

    results: list[RestoreResult]
    scripts: dict[str, bool]


class LongOperations(ABC):
    """The long-running operations, begun by one activity and polled by others (the monitor pattern).

    ``begin_*`` starts the work and returns at once with the first status (ARM's 201/202 and ``Retry-After``);
    ``key`` is deterministic, so a begin run twice finds the operation it began and starts nothing (it also
    looks at Azure before acting, as the blocking calls do). ``status`` polls; ``*_results`` reads what a
    terminal operation did and raises :class:`~shared.domain.operations.OperationPending` before that.
    """

    @abstractmethod
    def begin_apply(self, key: str, vm_ids: Sequence[str], change: ChangeSpec, *,
                    timeout_minutes: float) -> OperationStatus: ...

    @abstractmethod
    def begin_snapshots(self, key: str, vm_ids: Sequence[str], *, tag: str) -> OperationStatus: ...

    @abstractmethod
    def begin_restore(self, key: str, snapshots: Sequence[SnapshotInfo], *, script: str) -> OperationStatus:
        """Restore each VM from its snapshot, then run ``script`` on those restored."""

    @abstractmethod
    def begin_shadows(self, key: str, plans: Sequence[ShadowPlan], *, rollout_id: str, spot_fallback: str,
                      max_regular: int | None = None) -> OperationStatus: ...

    @abstractmethod
    def status(self, handles: Sequence[OperationHandle]) -> list[OperationStatus]: ...

    # What a terminal operation did, for the VMs (plans, snapshots) the finishing activity still has to record:
    # it names them again from the rollout store, so no per-VM list rides in a handle or a history.
    @abstractmethod
    def apply_results(self, handle: OperationHandle, vm_ids: Sequence[str]) -> list[ApplyResult]: ...

    @abstractmethod
    def snapshot_results(self, handle: OperationHandle, vm_ids: Sequence[str]) -> list[SnapshotInfo]:
        """The snapshots made; a VM whose snapshot could not be made is missing."""

    @abstractmethod
    def restore_results(self, handle: OperationHandle, snapshots: Sequence[SnapshotInfo]) -> RestoreOutcome: ...

    @abstractmethod
    def shadow_results(self, handle: OperationHandle, plans: Sequence[ShadowPlan]) -> list[ShadowInfo]: ...


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

    def in_use(self) -> ModelInUse:
        """Which model scores now and, if it is a fallback, why (recorded in every rollout's decisions)."""
        return ModelInUse(version=self.name, source=ModelSource.JUDGE)


class ModelRegistry(ABC):
    """Versions of the failure model and the ``promoted`` pointer the rollout app scores with.

    Versions are immutable: writing a version again with the same bytes is a no-op, with other bytes an
    error. ``promote`` is a compare-and-swap on the pointer, so two trainers cannot both promote.
    """

    location: str = ""

    @abstractmethod
    def put_version(self, version: str, files: Mapping[str, bytes]) -> None: ...

    @abstractmethod
    def get_file(self, version: str, name: str) -> bytes:
        """One file of a version; NotFound when the version or the file is missing."""

    @abstractmethod
    def versions(self) -> list[str]:
        """Every version written, sorted."""

    @abstractmethod
    def promoted(self) -> PromotedPointer | None:
        """The pointer with its ETag, or None before the first promotion."""

    @abstractmethod
    def promote(self, promotion: Promotion, *, expected_etag: str | None) -> PromotedPointer:
        """Move the pointer only if it still has ``expected_etag`` (None: only if there is no pointer yet).

        Raises :class:`~shared.domain.errors.PromotionConflict` when it moved meanwhile.
        """

    @abstractmethod
    def put_run(self, name: str, report: bytes) -> None:
        """Keep a trainer run's report (promoted or not, and why) under ``runs/``."""


class StoredRow:
    """A row as read, with the version (ETag) an update must name.

    A store may hand the row over as its JSON text: the value is decoded on first use, so a reader that keeps
    rows parsed by version (the repository) pays for the versions it has not seen only."""

    __slots__ = ("_text", "_value", "etag")

    def __init__(self, value: dict[str, Any] | None = None, etag: str = "", *, text: str | None = None) -> None:
        if (value is None) == (text is None):
            raise ValueError("a stored row holds either its value or its JSON text")
        self._value = value
        self._text = text
        self.etag = etag

    @property
    def value(self) -> dict[str, Any]:
        if self._value is None:
            decoded = json.loads(cast(str, self._text))
            if not isinstance(decoded, dict):
                raise TypeError(f"a stored row is a JSON object, not {type(decoded).__name__}")
            self._value = decoded
        return self._value

    def __repr__(self) -> str:
        return f"StoredRow(etag={self.etag!r})"


@dataclass(frozen=True)
class RowWrite:
    """A row to write: ``etag`` is the version it was read at (``IfNotModified``), None for a new row."""

    value: Mapping[str, Any]
    etag: str | None


RECORD = "record"
"""The kind, and key, of a rollout's record row."""
MAX_UPDATE_ATTEMPTS = 50


class RolloutStore(ABC):
    """Durable state of rollouts: rows of JSON, per rollout and kind (record, vm, shadow, decision ...), by key.

    Every write names the version it read (optimistic concurrency): a row changed since then is refused with
    :class:`~shared.domain.errors.StaleWrite` and nothing of that write is kept, so a writer re-reads and
    tries again (:meth:`update`). Writers that are naturally separate (one per chunk, wave or VM) write rows
    of their own and never meet. Readers get plain dicts; the typed view is ``shared.orchestration.repository``.
    """

    ATOMIC_ROWS = 100
    """A write of at most this many rows (each within one entity) is all-or-nothing."""

    @abstractmethod
    def rows(self, rollout_id: str, kind: str) -> dict[str, StoredRow]:
        """Every row of one kind, with its version."""

    @abstractmethod
    def write(self, rollout_id: str, kind: str, rows: Mapping[str, RowWrite]) -> dict[str, str]:
        """Write rows if none changed since read (each ``etag``; None: must not exist yet); new versions.

        Raises StaleWrite when one had; a write of at most :attr:`ATOMIC_ROWS` rows then changed nothing.
        """

    @abstractmethod
    def rollout_ids(self) -> list[str]:
        """Every rollout the store holds (the failure model's training history)."""

    def rows_since(self, rollout_id: str, kind: str, generation: int | None
                   ) -> tuple[int | None, dict[str, StoredRow] | None]:
        """The kind's rows unless none was written since ``generation`` (then None), with the kind's generation.

        A store that cannot tell (None for a generation) always answers with the rows: one read either way."""
        return None, self.rows(rollout_id, kind)

    # ------------------------------------------------------------------ built on the above
    def update(self, rollout_id: str, kind: str, keys: Sequence[str],
               change: Callable[[str, dict[str, Any] | None], Mapping[str, Any] | None]) -> None:
        """Read, change and write back rows with their versions; on a stale version read again and redo.

        ``change(key, current)`` returns the new value (None leaves the row as it is); it must depend only
        on its arguments, since it runs again after a conflict. Rows go in groups of :attr:`ATOMIC_ROWS`.
        """
        self.update_rows(rollout_id, kind, keys,
                         lambda key, row: change(key, dict(row.value) if row is not None else None))

    def update_rows(self, rollout_id: str, kind: str, keys: Sequence[str],
                    change: Callable[[str, StoredRow | None], Mapping[str, Any] | None]) -> dict[str, str]:
        """:meth:`update`, with each row's version shown to ``change`` (which must not mutate the row) and the
        versions written returned: a reader that keeps rows parsed by version needs not parse them again."""
        todo = list(dict.fromkeys(keys))
        current = self.rows(rollout_id, kind) if todo else {}
        written: dict[str, str] = {}
        for a in range(0, len(todo), self.ATOMIC_ROWS):
            group = todo[a:a + self.ATOMIC_ROWS]
            for attempt in range(MAX_UPDATE_ATTEMPTS):
                writes: dict[str, RowWrite] = {}
                for key in group:
                    row = current.get(key)
                    value = change(key, row)
                    if value is not None:
                        writes[key] = RowWrite(value, row.etag if row is not None else None)
                try:
                    written.update(self.write(rollout_id, kind, writes))
                    break
                except StaleWrite:
                    if attempt == MAX_UPDATE_ATTEMPTS - 1:
                        raise
                    current = self.rows(rollout_id, kind)  # someone wrote meanwhile: read again, redo
        return written

    def put_items(self, rollout_id: str, kind: str, items: Mapping[str, Mapping[str, Any]]) -> None:
        """Merge fields into rows (created when missing), each an optimistic read-merge-write."""
        self.update(rollout_id, kind, list(items), lambda k, cur: {**(cur or {}), **items[k]})

    def put_rollout(self, rollout_id: str, fields: Mapping[str, Any]) -> None:
        self.update(rollout_id, RECORD, [RECORD], lambda _, cur: {**(cur or {}), **fields})

    def get_items(self, rollout_id: str, kind: str) -> dict[str, dict[str, Any]]:
        """All rows of one kind, without versions (read-only views for reports and tests)."""
        return {k: r.value for k, r in self.rows(rollout_id, kind).items()}

    def get_rollout(self, rollout_id: str) -> dict[str, Any] | None:
        row = self.rows(rollout_id, RECORD).get(RECORD)
        return row.value if row is not None else None

    def decisions(self, rollout_id: str) -> list[dict[str, Any]]:
        """The decisions in key order (time, then step, then chunk, then index: see the repository)."""
        rows = self.rows(rollout_id, "decision")
        return [rows[k].value for k in sorted(rows)]


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
