"""Begin an ARM long-running operation without waiting for it, and poll it once later, from another process.

ARM answers a long-running PUT/POST/DELETE with 201/202 and ``Azure-AsyncOperation`` (or ``Location``) and
``Retry-After``; the client GETs that URL until the status is terminal ("Track asynchronous Azure operations",
learn.microsoft.com/azure/azure-resource-manager/management/async-operations). azure-core carries the state of such
a poll in a continuation token: ``LROPoller.continuation_token()`` and ``begin_x(..., continuation_token=token)``
(azure-core ``azure/core/polling/_poller.py``; since 1.38 the token of ``LROBasePolling`` is JSON, no pickle:
``azure/core/polling/base_polling.py``, ``get_continuation_token`` / ``from_continuation_token``). The generated
``begin_*`` methods of azure-mgmt-compute accept both ``polling=<PollingMethod>`` and ``continuation_token``
(``azure/mgmt/compute/operations/_operations.py``): with a token they skip the initial request and rebuild the
poller over the client's own pipeline (retries, pacing, authentication).

So an operation is begun with :class:`Begun` (the poller makes no status request; the token is kept) and polled
with :class:`PollStep` (exactly one status request, no sleep: the orchestrator's durable timer is the wait, at the
``Retry-After`` kept here).

The adapters' batch calls have several steps (a shadow: snapshot, then disk, then VM; a restore: disk, deallocate,
swap, start, script), each a batch of operations with deterministic names. Run under :func:`stepping`, a batch
(``compute.Batch``) neither waits nor polls in a loop: for each operation it either begins it (and asks once how
long it has left) or polls it once through its continuation token, kept in the :class:`StepBook`; while any is
running, :class:`StepPending` stops the call, with the longest ``Retry-After``. Run again later with the same book
(``shared.adapters.azure.long_operations``), the call finds every ended operation's result in the book and goes on
to its next step; the reads it makes before acting are kept too, so they see the world as the first run did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core.polling import LROPoller
from azure.mgmt.core.polling.arm_polling import ARMPolling

from ...domain.errors import AzureOperationError, ShadowRolloutError
from .errors import azure_errors

TERMINAL_FAILED = frozenset({"failed", "canceled", "cancelled"})


class Begun(ARMPolling):
    """Polling that never polls: the begin returns with the initial response and its continuation token."""

    def run(self) -> None:
        return None


# ---------------------------------------------------------------------------------------------- steps
class StepPending(Exception):
    """Some operation of the current step is still running; ask again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"a step is running; ask again in {retry_after:.1f} s")
        self.retry_after = retry_after


class _NotYet(Exception):
    pass


class PollStep(ARMPolling):
    """One status request, and the final GET once terminal; a failed operation raises as ``LROBasePolling.run``
    does (so the adapters map it exactly as when they waited). Instead of sleeping, it keeps the ``Retry-After``
    in :attr:`retry_after` and stops."""

    retry_after: float = 0.0

    def _delay(self) -> None:
        self.retry_after = float(self._extract_delay())
        raise _NotYet

    def run(self) -> None:
        try:
            super().run()
        except _NotYet:
            return


@dataclass
class StepEntry:
    """One operation of a step: its continuation token while it runs, then its result or its (mapped) error."""

    token: str = ""
    retry_after: float = 0.0
    done: bool = False
    result: Any = None
    error: Exception | None = None
    times: dict[str, datetime] = field(default_factory=dict)
    """The operation's ``startTime``/``endTime`` as ARM reported them (for a hook run after it ended)."""


@dataclass
class StepBook:
    """What one multi-step call has begun, and what it read before acting, across its runs."""

    entries: dict[str, StepEntry] = field(default_factory=dict)
    reads: dict[str, Any] = field(default_factory=dict)


_ACTIVE: ContextVar[StepBook | None] = ContextVar("shadow_rollout_steps", default=None)


@contextmanager
def stepping(book: StepBook) -> Iterator[StepBook]:
    """Run the adapters' batch calls in this context one step at a time, over ``book``."""
    token = _ACTIVE.set(book)
    try:
        yield book
    finally:
        _ACTIVE.reset(token)


def active_book() -> StepBook | None:
    return _ACTIVE.get()


def remembered(key: str, read: Callable[[], Any]) -> Any:
    """A read made before acting: under :func:`stepping`, the first run's answer (a later run must not see the
    work its own first run began as if another had done it)."""
    book = active_book()
    if book is None:
        return read()
    if key not in book.reads:
        book.reads[key] = read()
    return book.reads[key]


class _EndTime:
    """Keeps the ``endTime`` of an operation's terminal status answer in its entry (then calls the caller's own
    hook): ARM's operation-status resource reports when the operation ended, ``startTime``/``endTime`` beside
    ``status`` ("Track asynchronous Azure operations", learn.microsoft.com/azure/azure-resource-manager/management/
    async-operations), so the operation's end is ARM's, not the time a poll happened to ask."""

    def __init__(self, entry: StepEntry, inner: Callable[[Any], None] | None) -> None:
        self.entry, self.inner = entry, inner

    def __call__(self, response: Any) -> None:
        if self.inner is not None:
            self.inner(response)
        body = operation_status(response)
        end = body.get("endTime") if body is not None else None
        if end:
            try:
                self.entry.times["end"] = end_time(end)
            except ValueError:  # not a time: the operation's end is then when it was seen ended (ended_at)
                return


def operation_status(response: Any) -> dict[str, Any] | None:
    """The body of an answer from ARM's operation-status resource (a raw_response_hook's argument), or None when
    the answer is another request's, not a 200, or not a JSON object."""
    http = response.http_response
    if "/operations/" not in http.request.url or http.status_code != 200:
        return None
    try:
        body = http.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def end_time(value: Any) -> datetime:
    """An ``endTime`` as ARM writes it (ISO 8601, ``Z`` or an offset; UTC when it has none)."""
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def ended_at(book: StepBook) -> datetime | None:
    """When the last operation of a multi-step call ended, by ARM's ``endTime``s (None: none reported one)."""
    ends = [e.times["end"] for e in book.entries.values() if "end" in e.times]
    return max(ends, default=None)


def step(book: StepBook, ident: str, start: Callable[..., LROPoller[Any]], args: tuple[Any, ...],
         config: dict[str, Any], operation: str, resource: str) -> StepEntry:
    """Begin the operation ``ident`` of a step, or poll it once; its entry in ``book``."""
    entry = book.entries.get(ident)
    if entry is not None and entry.done:
        return entry
    try:
        with azure_errors(operation, resource):
            if entry is None:
                begun = Begun(**config)
                poller = start(*args, polling=begun, **config)
                entry = book.entries[ident] = StepEntry(token=str(poller.continuation_token()))
                if begun.finished():  # ARM answered the request synchronously (200 with its final state)
                    if begun.status().lower() in TERMINAL_FAILED:
                        raise AzureOperationError(f"{operation} {resource}: operation {begun.status()}",
                                                  resource=resource)
                    entry.result, entry.done = poller.result(), True
                    return entry
            config = {**config, "raw_response_hook": _EndTime(entry, config.get("raw_response_hook"))}
            method = PollStep(**config)
            poller = start(*args, polling=method, continuation_token=entry.token, **config)
            poller.wait()  # the poll ran in the poller's thread; a failed operation raises here, mapped
            if method.finished():
                entry.result, entry.done = poller.result(), True
            else:
                entry.retry_after = method.retry_after
    except ShadowRolloutError as exc:
        if entry is None:
            entry = book.entries[ident] = StepEntry()
        entry.error, entry.done = exc, True
    return entry
