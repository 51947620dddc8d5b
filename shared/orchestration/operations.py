"""Waiting for long-running operations in an orchestrator: durable timers and status polls (the monitor pattern).

An activity that waited for an ARM operation would hold a worker for as long as Azure takes, and the host kills
it at ``functionTimeout``. So a long step is three: ``begin_<step>`` activities begin the operations and return
their handles at once; :func:`await_operations` sleeps on durable timers until the soonest operation's
``Retry-After`` is up (each bounded), asks ``operation_status`` about the operations then due, a batch of handles
at a time, and stops waiting at the policy's deadline (the operations still running are then TIMED_OUT, recorded
as such by the step, never a host kill); the ``<step>`` activities then read the results and record them.
Durable Functions documents the pattern as the "Monitor" application pattern
(learn.microsoft.com/azure/azure-functions/durable/durable-functions-overview, "Pattern #4: Monitor"): a loop
of an activity call and ``create_timer``.

Replay-safe: every decision depends only on activity results and ``context.current_utc_datetime``.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from ..domain.operations import OperationHandle, OperationState, OperationStatus
from .state import AheadRef, BatchChunkRef, ChunkRef, Model, RolloutRef, WaveChunkRef

STATUS_ACTIVITY = "operation_status"
STATUS_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=30_000, max_number_of_attempts=5)
"""A poll that failed (throttled past the client's retries, 5xx) is asked again: it changes nothing."""


@dataclass(frozen=True)
class PollPolicy:
    """How long to wait for a step's operations, how often to ask, and how many handles one poll carries."""

    timeout: timedelta
    max_interval: timedelta = timedelta(minutes=5)
    """The longest single wait, whatever Retry-After says: a status is never older than this."""
    default_interval: timedelta = timedelta(seconds=30)
    """The wait when no Retry-After was given (azure-core's ARM polling default, 30 s)."""
    batch: int = 20
    """Handles per ``operation_status`` call: the polls of one round run in parallel."""
    per_item: timedelta = timedelta(0)
    """Added to ``timeout`` for each item (VM, disk) of the operations waited for: what one item's writes take
    when the subscription's write budget is what limits them, so a batch of 48,000 restores is not given up on
    after the time a batch of 48 needs (docs/azure-adapters.md, "Budgets and pacing": ARM's sustained 10 writes
    per second, Compute's 500 VM updates per minute)."""

    def allowance(self, items: int) -> timedelta:
        """How long to wait for operations over ``items`` items in all."""
        return self.timeout + self.per_item * items


WAIT_APPLY = PollPolicy(timeout=timedelta(minutes=240), per_item=timedelta(seconds=0.12))
"""Past the longest apply_timeout_minutes the policy allows (180): the change's own limit ends it first. An apply
is one VM update per VM (run command or extension): 0.12 s at 500 per minute."""
WAIT_SNAPSHOTS = PollPolicy(timeout=timedelta(minutes=120), per_item=timedelta(seconds=0.1))
"""One ARM write per disk: 0.1 s at 10 per second."""
WAIT_RESTORE = PollPolicy(timeout=timedelta(minutes=120), per_item=timedelta(seconds=0.4))
"""A Flexible VM's restore sends four writes (disk, deallocate, swap, start): 0.4 s at 10 per second."""
WAIT_SHADOWS = PollPolicy(timeout=timedelta(minutes=120), per_item=timedelta(seconds=0.3))
"""A shadow is a snapshot, a disk and a VM: three writes, 0.3 s at 10 per second."""


class StatusQuery(Model):
    handles: list[OperationHandle]


class StatusAnswer(Model):
    statuses: list[OperationStatus]


class Began(Model):
    """What a ``begin_<step>`` activity returns: its operation's first status, or None when it had nothing to do."""

    operation: OperationStatus | None = None


class RolloutOp(RolloutRef):
    operation: OperationStatus | None = None


class ChunkOp(ChunkRef):
    operation: OperationStatus | None = None


class WaveChunkOp(WaveChunkRef):
    operation: OperationStatus | None = None


class AheadOp(AheadRef):
    operation: OperationStatus | None = None


class BatchChunkOp(BatchChunkRef):
    operation: OperationStatus | None = None


Orchestration = Generator[Any, Any, Any]


def _wait(status: OperationStatus, policy: PollPolicy) -> timedelta:
    """How long until ``status``'s operation is asked about again: its Retry-After, at most ``max_interval``."""
    wait = timedelta(seconds=status.retry_after_seconds) if status.retry_after_seconds > 0 else policy.default_interval
    return min(wait, policy.max_interval)


def await_operations(context: df.DurableOrchestrationContext, began: Sequence[OperationStatus | None],
                     policy: PollPolicy) -> Orchestration:
    """Poll until every operation is terminal or the deadline passed; the final statuses, in ``began``'s order
    (None stays None: nothing was begun).

    An operation whose Retry-After is a step's (ARM) is asked about when its own is up, and only the operations
    then due are asked: an operation of several steps (a restore: disk, deallocate, swap, start, then the
    post-rollback script) begins its next step when it is asked after its current one ended, so asked at another
    chunk's longer Retry-After, it began that step late and ended late, which Azure would not have made it do
    ("Track asynchronous Azure operations": the client checks each operation's status after its
    ``Retry-After``, learn.microsoft.com/azure/azure-resource-manager/management/async-operations). Operations
    whose Retry-After is their end (``retry_after_is_end``: the simulator's) are asked together when the slowest
    of them is due: asking sooner would begin nothing and only lengthen the history. The rounds are at most one
    per distinct due time of at most ``MAX_FANOUT`` operations a step, so the history does not grow with the
    fleet."""
    final: dict[str, OperationStatus] = {}
    running: dict[str, OperationStatus] = {}
    due: dict[str, datetime] = {}
    start: datetime = context.current_utc_datetime
    for s in began:
        if s is None:
            continue
        (final if s.state.terminal else running)[s.handle.key] = s
        if not s.state.terminal:
            due[s.handle.key] = start + _wait(s, policy)
    allowance = policy.allowance(sum(s.handle.items for s in running.values()))
    deadline = start + allowance
    while running:
        now: datetime = context.current_utc_datetime
        if now >= deadline:
            for key, s in running.items():
                final[key] = s.model_copy(update={"state": OperationState.TIMED_OUT, "retry_after_seconds": 0.0,
                                                  "message": f"still running after {allowance} of polling"})
            break
        ends = [due[k] for k, s in running.items() if s.retry_after_is_end]
        together = max(ends) if ends else None  # those whose Retry-After is their end: asked with the slowest
        wake = {k: together if s.retry_after_is_end and together is not None else due[k] for k, s in running.items()}
        yield context.create_timer(min(min(wake.values()), deadline))
        now = context.current_utc_datetime
        handles = [s.handle for k, s in running.items() if wake[k] <= now or now >= deadline]
        answers = yield context.task_all([
            context.call_activity_with_retry(STATUS_ACTIVITY, STATUS_RETRY,
                                             StatusQuery(handles=handles[a:a + policy.batch]).json_dict())
            for a in range(0, len(handles), policy.batch)])
        asked_at: datetime = context.current_utc_datetime
        for answer in answers:
            for s in StatusAnswer.model_validate(answer).statuses:
                if s.state.terminal:
                    final[s.handle.key] = s
                    running.pop(s.handle.key, None)
                    due.pop(s.handle.key, None)
                else:
                    running[s.handle.key] = s
                    due[s.handle.key] = asked_at + _wait(s, policy)
    return [None if s is None else final[s.handle.key] for s in began]


def run_long(context: df.DurableOrchestrationContext, step: str, payloads: Sequence[Model], policy: PollPolicy,
             retry: df.RetryOptions | None = None) -> Orchestration:
    """``begin_<step>`` for each payload (in parallel), wait for the operations, then ``<step>`` for each with its
    operation's final status; the step's results, in order. ``retry`` applies to both activities: a begin run
    again finds its operation, a step run again finds its records."""

    def call(name: str, payload: dict[str, Any]) -> Any:
        if retry is None:
            return context.call_activity(name, payload)
        return context.call_activity_with_retry(name, retry, payload)

    began = [Began.model_validate(b).operation
             for b in (yield context.task_all([call(f"begin_{step}", p.json_dict()) for p in payloads]))]
    done = yield from await_operations(context, began, policy)
    results = yield context.task_all([
        call(step, {**p.json_dict(), **({"operation": d.json_dict()} if d is not None else {})})
        for p, d in zip(payloads, done, strict=True)])
    return list(results)
