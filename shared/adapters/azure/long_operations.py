"""The long-running operations port over the Azure SDK adapters: one step per call, never a wait.

A begin runs the adapters' batch call under :func:`~shared.adapters.azure.operations.stepping`: the call begins
its first step's ARM operations (and asks each once how long it has left) and stops with
:class:`~shared.adapters.azure.operations.StepPending`. Each later ``status`` runs the call again over the same
step book: an operation still running is polled once (one status request through its continuation token); once
every operation of a step has ended, the call goes on and begins the next step (each an idempotent PUT/POST with a
deterministic name); once the call returns, the operation has succeeded and its result is kept for the step's
finishing activity. So no activity waits for Azure: each sends a few requests and returns
(tests/unit/test_activity_bounds.py holds it under a bound on both backends).

The step books live in this process (as the simulator's book lives in its world). A poll or a finishing activity
that runs where the book is not (another worker) runs the call again from a new book: its looks before acting
find the work done and its PUTs, of the same names, begin nothing new, so it reports the step where Azure is.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ...domain.operations import (
    OperationHandle,
    OperationKind,
    OperationPending,
    OperationState,
    OperationStatus,
)
from ...ports import DiskSnapshots, Fleet, ShadowPool
from ..recorded_operations import RecordedOperation, RecordedOperations
from .operations import StepBook, StepPending, ended_at, stepping

DUE_SECONDS = 1e-3
"""A step asked about within a millisecond of its Retry-After is asked (timers are in microseconds)."""


@dataclass
class _Running:
    handle: OperationHandle
    call: Callable[[], Any]
    book: StepBook = field(default_factory=StepBook)
    due: datetime | None = None
    """When the step's longest Retry-After is up: asking before then sends nothing."""
    lock: threading.Lock = field(default_factory=threading.Lock)


class AzureLongOperations(RecordedOperations):
    def __init__(self, fleet: Fleet, shadows: ShadowPool, snapshots: DiskSnapshots,
                 now: Callable[[], datetime]) -> None:
        super().__init__(fleet, shadows, snapshots, {})
        self._now = now
        self.running: dict[str, _Running] = {}

    def now(self) -> datetime:
        return self._now()

    def run(self, call: Callable[[], Any]) -> tuple[Any, datetime]:
        """A call begun where this process has no book: one step of it from a new book."""
        try:
            with stepping(StepBook()):
                result = call()
        except StepPending as pending:
            raise OperationPending(f"an operation begun elsewhere is still running ({pending})") from pending
        return result, self.now()

    def _begin(self, key: str, kind: OperationKind, items: int, token: Mapping[str, Any],
               call: Callable[[], Any]) -> OperationStatus:
        found = self.book.get(key)
        if found is not None:
            return self._status(found)
        running = self.running.get(key)
        if running is None:  # a begin run twice finds its operation here and begins nothing
            handle = OperationHandle(key=key, kind=kind, begun_at=self.now(), items=items,
                                     token=json.dumps(dict(token), sort_keys=True))
            running = self.running.setdefault(key, _Running(handle, call))
        return self._advance(running)

    def _advance(self, running: _Running) -> OperationStatus:
        """Poll the current step once, or begin the next; the operation's status."""
        with running.lock:
            key = running.handle.key
            if key in self.book:
                return self._status(self.book[key])
            now = self.now()
            if running.due is not None and (running.due - now).total_seconds() > DUE_SECONDS:
                return OperationStatus(handle=running.handle, state=OperationState.RUNNING,
                                       retry_after_seconds=(running.due - now).total_seconds())
            try:
                with stepping(running.book):
                    result = running.call()
            except StepPending as pending:
                running.due = self.now() + timedelta(seconds=pending.retry_after)
                return OperationStatus(handle=running.handle, state=OperationState.RUNNING,
                                       retry_after_seconds=pending.retry_after)
            # ended when ARM says its last operation ended (as the simulator's book records it), not when asked
            now = self.now()
            end = ended_at(running.book)
            end = now if end is None else max(running.handle.begun_at, min(end, now))
            done = self.book[key] = RecordedOperation(running.handle, end, result)
            self.running.pop(key, None)
            return self._status(done)

    def status(self, handles: Sequence[OperationHandle]) -> list[OperationStatus]:
        out: list[OperationStatus] = []
        for h in handles:
            running = self.running.get(h.key)
            out.extend([self._advance(running)] if running is not None else super().status([h]))
        return out
