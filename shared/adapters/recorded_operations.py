"""Long-running operations over the adapters' batch calls, each recorded with when it ends.

The simulator's adapters compute an operation's whole course when it is begun (the world records the time of
every state change), so :class:`~shared.adapters.simulator.operations.SimOperations` runs the batch call, notes
when it ends, and puts the clock back: the begin returns at once and polls answer ``running`` with the time
left as ``Retry-After`` until the clock has passed the end. The Azure SDK adapters' version,
:class:`~shared.adapters.azure.long_operations.AzureLongOperations`, keeps the same book of ended operations but
advances each call one step per poll, through ARM's continuation tokens.

A begin run twice finds its operation in the book by its key and starts nothing; a finishing activity that runs
where the book is not (another worker) calls the batch call again, which looks before acting (issue 12): it
finds the work done and answers with its results.
"""

from __future__ import annotations

import copy
import json
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..domain.model import ApplyResult, ChangeSpec, RestoreResult, ShadowInfo, ShadowPlan, SnapshotInfo
from ..domain.operations import OperationHandle, OperationKind, OperationPending, OperationState, OperationStatus
from ..ports import DiskSnapshots, Fleet, LongOperations, RestoreOutcome, ShadowPool

SNAPSHOT_ROUNDS = 3


@dataclass
class RecordedOperation:
    handle: OperationHandle
    done_at: datetime
    result: Any


class RecordedOperations(LongOperations):
    """The begin/poll port over blocking batch calls; subclasses say how a call runs and what time it is."""

    def __init__(self, fleet: Fleet, shadows: ShadowPool, snapshots: DiskSnapshots,
                 book: dict[str, RecordedOperation]) -> None:
        self.fleet = fleet
        self.shadows = shadows
        self.snapshots = snapshots
        self.book = book

    def over(self, fleet: Fleet, shadows: ShadowPool, snapshots: DiskSnapshots) -> RecordedOperations:
        """The same book over other ports (e.g. wrapped ones: a test's failing fleet, chaos)."""
        other = copy.copy(self)
        other.fleet, other.shadows, other.snapshots = fleet, shadows, snapshots
        return other

    @abstractmethod
    def now(self) -> datetime: ...

    @abstractmethod
    def run(self, call: Callable[[], Any]) -> tuple[Any, datetime]:
        """Run a batch call; its result and when it ends."""

    # ------------------------------------------------------------------ begin
    def _begin(self, key: str, kind: OperationKind, items: int, token: Mapping[str, Any],
               call: Callable[[], Any]) -> OperationStatus:
        found = self.book.get(key)
        if found is None:
            begun = self.now()
            result, done_at = self.run(call)
            found = RecordedOperation(OperationHandle(key=key, kind=kind, begun_at=begun, items=items,
                                                      token=json.dumps(dict(token), sort_keys=True)),
                                      max(done_at, begun), result)
            self.book[key] = found
        return self._status(found)

    def begin_apply(self, key: str, vm_ids: Sequence[str], change: ChangeSpec, *,
                    timeout_minutes: float) -> OperationStatus:
        ids = list(vm_ids)
        return self._begin(key, OperationKind.APPLY, len(ids),
                           {"change": change.to_dict(), "timeout_minutes": timeout_minutes},
                           lambda: self.fleet.apply_change(ids, change, timeout_minutes=timeout_minutes))

    def begin_snapshots(self, key: str, vm_ids: Sequence[str], *, tag: str) -> OperationStatus:
        ids = list(vm_ids)
        return self._begin(key, OperationKind.SNAPSHOT, len(ids), {"tag": tag}, lambda: self._snapshot(ids, tag))

    def begin_restore(self, key: str, snapshots: Sequence[SnapshotInfo], *, script: str) -> OperationStatus:
        snaps = list(snapshots)
        return self._begin(key, OperationKind.RESTORE, len(snaps), {"script": script},
                           lambda: self._restore(snaps, script))

    def begin_shadows(self, key: str, plans: Sequence[ShadowPlan], *, rollout_id: str, spot_fallback: str,
                      max_regular: int | None = None) -> OperationStatus:
        todo = list(plans)
        return self._begin(key, OperationKind.CREATE_SHADOWS, len(todo),
                           {"rollout_id": rollout_id, "spot_fallback": spot_fallback, "max_regular": max_regular},
                           lambda: self._create(todo, rollout_id, spot_fallback, max_regular))

    def _snapshot(self, vm_ids: list[str], tag: str) -> list[SnapshotInfo]:
        """Snapshots of each VM; one that could not be made is tried again, up to SNAPSHOT_ROUNDS batches (what
        a Durable retry of the blocking step did)."""
        made: dict[str, SnapshotInfo] = {}
        for _ in range(SNAPSHOT_ROUNDS):
            missing = [v for v in vm_ids if v not in made]
            if not missing:
                break
            made.update({s.vm_id: s for s in self.snapshots.snapshot(missing, tag=tag)})
        return [made[v] for v in vm_ids if v in made]

    def _restore(self, snapshots: list[SnapshotInfo], script: str) -> RestoreOutcome:
        results = self.fleet.restore_from_snapshots(snapshots)
        ok = [x.vm_id for x in results if x.ok]
        return RestoreOutcome(results, self.fleet.run_script(ok, script) if ok else {})

    def _create(self, plans: list[ShadowPlan], rollout_id: str, spot_fallback: str,
                max_regular: int | None) -> dict[ShadowPlan, ShadowInfo]:
        made = self.shadows.create(plans, rollout_id=rollout_id, spot_fallback=spot_fallback, max_regular=max_regular)
        return dict(zip(plans, made, strict=True))

    # ------------------------------------------------------------------ poll
    def _status(self, op: RecordedOperation) -> OperationStatus:
        left = (op.done_at - self.now()).total_seconds()
        if left > 1e-3:
            return OperationStatus(handle=op.handle, state=OperationState.RUNNING, retry_after_seconds=left,
                                   retry_after_is_end=True)
        return OperationStatus(handle=op.handle, state=OperationState.SUCCEEDED, ended_at=op.done_at)

    def status(self, handles: Sequence[OperationHandle]) -> list[OperationStatus]:
        out: list[OperationStatus] = []
        for h in handles:
            op = self.book.get(h.key)
            if op is None:  # begun where this book is not: the batch calls find what it did when asked
                out.append(OperationStatus(handle=h, state=OperationState.SUCCEEDED))
            else:
                out.append(self._status(op))
        return out

    # ------------------------------------------------------------------ results
    def _result(self, handle: OperationHandle, again: Callable[[dict[str, Any]], Any]) -> Any:
        op = self.book.get(handle.key)
        if op is None:  # another worker began it: the batch call looks before acting and finds the work done
            result, done_at = self.run(lambda: again(json.loads(handle.token or "{}")))
            op = self.book[handle.key] = RecordedOperation(handle, done_at, result)
        if op.done_at > self.now() and (op.done_at - self.now()).total_seconds() > 1e-3:
            raise OperationPending(f"operation {handle.key} ({handle.kind}) has not ended; poll it first")
        return op.result

    def apply_results(self, handle: OperationHandle, vm_ids: Sequence[str]) -> list[ApplyResult]:
        ids = list(vm_ids)
        done: list[ApplyResult] = self._result(handle, lambda t: self.fleet.apply_change(
            ids, ChangeSpec.from_dict(t["change"]), timeout_minutes=float(t["timeout_minutes"])))
        by_vm = {a.vm_id: a for a in done}
        return [by_vm[v] for v in ids if v in by_vm]

    def snapshot_results(self, handle: OperationHandle, vm_ids: Sequence[str]) -> list[SnapshotInfo]:
        ids = list(vm_ids)
        made: list[SnapshotInfo] = self._result(handle, lambda t: self._snapshot(ids, str(t["tag"])))
        wanted = set(ids)
        return [s for s in made if s.vm_id in wanted]

    def restore_results(self, handle: OperationHandle, snapshots: Sequence[SnapshotInfo]) -> RestoreOutcome:
        snaps = list(snapshots)
        out: RestoreOutcome = self._result(handle, lambda t: self._restore(snaps, str(t["script"])))
        wanted = {s.vm_id for s in snaps}
        return RestoreOutcome([x for x in out.results if x.vm_id in wanted],
                              {k: v for k, v in out.scripts.items() if k in wanted})

    def shadow_results(self, handle: OperationHandle, plans: Sequence[ShadowPlan]) -> list[ShadowInfo]:
        todo = list(plans)
        made: dict[ShadowPlan, ShadowInfo] = self._result(handle, lambda t: self._create(
            todo, str(t["rollout_id"]), str(t["spot_fallback"]), t.get("max_regular")))
        missing = [p for p in todo if p not in made]
        if missing:
            raise OperationPending(f"operation {handle.key} made no shadow for {missing[0].source_vm_id}")
        return [made[p] for p in todo]


__all__ = ["RecordedOperation", "RecordedOperations", "RestoreOutcome", "RestoreResult"]
