"""Waiting for long-running operations on durable timers (shared.orchestration.operations), through the SDK's
own replay in the local runner: the begins and polls return at once, the wait is timers at each operation's own
Retry-After (never longer than the policy's interval), polls go in batches, an operation that never ends is recorded
as timed out at the deadline (the orchestration completes), and a begin run twice starts nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import pytest

from shared.domain.errors import TransientError
from shared.domain.operations import OperationHandle, OperationKind, OperationState, OperationStatus
from shared.orchestration.operations import PollPolicy, StatusAnswer, StatusQuery, run_long
from shared.orchestration.state import ChunkRef
from shared.runtime.chaos import Chaos, Strike
from shared.runtime.local_durable import LocalDurableRunner

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NEVER = timedelta(days=30)


class Azure:
    """Operations that end at set times after their begin; counts what was begun and polled, and when."""

    def __init__(self, lasts: dict[int, timedelta], retry_after: float | None = None, items: int = 1,
                 retry_after_is_end: bool = False) -> None:
        self.now = T0
        self.retry_after_is_end = retry_after_is_end
        self.lasts = lasts
        self.items = items
        self.retry_after = retry_after
        self.ends: dict[str, datetime] = {}
        self.begins: dict[str, int] = {}
        self.polls: list[tuple[datetime, int]] = []
        self.finished: dict[int, tuple[datetime, str]] = {}
        self.refuse_polls = 0

    def status(self, h: OperationHandle) -> OperationStatus:
        end = self.ends[h.key]
        if self.now >= end:
            return OperationStatus(handle=h, state=OperationState.SUCCEEDED, ended_at=end)
        left = (end - self.now).total_seconds()
        return OperationStatus(handle=h, state=OperationState.RUNNING,
                               retry_after_seconds=left if self.retry_after is None else self.retry_after,
                               retry_after_is_end=self.retry_after_is_end)


def make_app(azure: Azure, policy: PollPolicy) -> df.DFApp:
    app = df.DFApp()

    @app.activity_trigger(input_name="payload")
    def begin_step(payload: dict[str, Any]) -> dict[str, Any]:
        c = ChunkRef.model_validate(payload).chunk
        key = f"r1:step:c{c}"
        azure.begins[key] = azure.begins.get(key, 0) + 1
        azure.ends.setdefault(key, azure.now + azure.lasts[c])  # looks before acting: begun once
        handle = OperationHandle(key=key, kind=OperationKind.APPLY, begun_at=azure.now, items=azure.items)
        return {"operation": azure.status(handle).json_dict()}

    @app.activity_trigger(input_name="payload")
    def operation_status(payload: dict[str, Any]) -> dict[str, Any]:
        query = StatusQuery.model_validate(payload)
        if azure.refuse_polls > 0:
            azure.refuse_polls -= 1
            raise TransientError("429 Too Many Requests", operation="poll", status=429)
        azure.polls.append((azure.now, len(query.handles)))
        return StatusAnswer(statuses=[azure.status(h) for h in query.handles]).json_dict()

    @app.activity_trigger(input_name="payload")
    def step(payload: dict[str, Any]) -> dict[str, Any]:
        op = OperationStatus.model_validate(payload["operation"])
        azure.finished[int(payload["chunk"])] = (azure.now, op.state.value)
        return {"state": op.state.value}

    @app.orchestration_trigger(context_name="context")
    def orchestrator(context: df.DurableOrchestrationContext) -> Any:
        results = yield from run_long(context, "step", [ChunkRef(rollout_id="r1", chunk=c) for c in azure.lasts],
                                      policy)
        return [r["state"] for r in results]

    return app


def run(azure: Azure, policy: PollPolicy, chaos: Chaos | None = None) -> tuple[LocalDurableRunner, Any]:
    def set_clock(t: datetime) -> None:
        azure.now = t

    runner = LocalDurableRunner(make_app(azure, policy), start=T0, set_clock=set_clock, read_clock=lambda: azure.now,
                                chaos=chaos)
    runner.start_new("orchestrator", "o1", None)
    runner.run()
    return runner, runner.result("o1")


def test_the_wait_is_timers_at_retry_after_and_no_activity_takes_time() -> None:
    azure = Azure({0: timedelta(minutes=3), 1: timedelta(minutes=7, seconds=30)})
    runner, states = run(azure, PollPolicy(timeout=timedelta(hours=1), max_interval=timedelta(minutes=10)))
    assert states == ["succeeded", "succeeded"]
    # each asked once, when its own Retry-After is up (an operation of several steps goes on to its next step
    # when asked after its current one ended: asked at the other's longer Retry-After, it would begin it late);
    # only the operation then due is asked; the step records both when the last has ended
    assert [(t - T0, n) for t, n in azure.polls] == [(timedelta(minutes=3), 1), (timedelta(minutes=7, seconds=30), 1)]
    assert all(t == T0 + timedelta(minutes=7, seconds=30) for t, _ in azure.finished.values())
    assert max(runner.stats.longest_activity.values()) == 0.0


def test_operations_whose_retry_after_is_their_end_are_asked_together_when_the_last_ends() -> None:
    """The simulator's operations end when their Retry-After says: asking one sooner begins nothing."""
    azure = Azure({0: timedelta(minutes=3), 1: timedelta(minutes=7, seconds=30)}, retry_after_is_end=True)
    _, states = run(azure, PollPolicy(timeout=timedelta(hours=1), max_interval=timedelta(minutes=10)))
    assert states == ["succeeded", "succeeded"]
    assert [(t - T0, n) for t, n in azure.polls] == [(timedelta(minutes=7, seconds=30), 2)]


def test_a_long_operation_is_polled_at_least_every_max_interval() -> None:
    azure = Azure({0: timedelta(minutes=30)})
    _, states = run(azure, PollPolicy(timeout=timedelta(hours=1), max_interval=timedelta(minutes=5)))
    assert states == ["succeeded"]
    times = [t - T0 for t, _ in azure.polls]
    assert times == [timedelta(minutes=5 * k) for k in range(1, 7)]


def test_without_retry_after_the_default_interval_is_used() -> None:
    azure = Azure({0: timedelta(minutes=2)}, retry_after=0.0)
    _, _ = run(azure, PollPolicy(timeout=timedelta(hours=1), default_interval=timedelta(seconds=30)))
    assert [t - T0 for t, _ in azure.polls] == [timedelta(seconds=30 * k) for k in range(1, 5)]


def test_polls_go_in_batches() -> None:
    azure = Azure({c: timedelta(minutes=1) for c in range(45)})
    _, states = run(azure, PollPolicy(timeout=timedelta(hours=1), batch=20))
    assert states == ["succeeded"] * 45
    assert sorted(n for _, n in azure.polls) == [5, 20, 20]


def test_an_operation_that_never_ends_is_recorded_as_timed_out_at_the_deadline() -> None:
    azure = Azure({0: timedelta(minutes=2), 1: NEVER})
    runner, states = run(azure, PollPolicy(timeout=timedelta(minutes=45), max_interval=timedelta(minutes=10)))
    assert states == ["succeeded", "timed_out"]  # the orchestration completed: nothing was killed
    assert azure.finished[1] == (T0 + timedelta(minutes=45), "timed_out")
    assert max(t for t, _ in azure.polls) == T0 + timedelta(minutes=45)
    assert runner.instances["o1"].status == "Completed"


@pytest.mark.parametrize(("items", "state"), [(1, "timed_out"), (30, "succeeded")])
def test_the_wait_grows_with_the_items_the_operations_carry(items: int, state: str) -> None:
    """Two operations of 30 items each, one lasting 90 minutes: 45 minutes plus a minute an item is 105 minutes,
    long enough; for operations of one item each, 47 minutes is not."""
    azure = Azure({0: timedelta(minutes=2), 1: timedelta(minutes=90)}, items=items)
    policy = PollPolicy(timeout=timedelta(minutes=45), max_interval=timedelta(minutes=10),
                        per_item=timedelta(minutes=1))
    _, states = run(azure, policy)
    assert states == ["succeeded", state]
    assert policy.allowance(2 * items) == timedelta(minutes=45 + 2 * items)


class RedeliverBegins(Chaos):
    def __init__(self) -> None:
        super().__init__(seed=0, rate=0.0)

    def strike(self) -> Strike | None:
        return Strike.REDELIVER if self.current is not None and self.current[0] == "begin_step" else None


def test_a_begin_run_twice_begins_nothing_twice_and_the_wait_is_the_same() -> None:
    calm = Azure({0: timedelta(minutes=4), 1: timedelta(minutes=6)})
    run(calm, PollPolicy(timeout=timedelta(hours=1)))
    azure = Azure({0: timedelta(minutes=4), 1: timedelta(minutes=6)})
    chaos = RedeliverBegins()
    _, states = run(azure, PollPolicy(timeout=timedelta(hours=1)), chaos)
    assert chaos.stats.redelivered == 2 and all(n == 2 for n in azure.begins.values())
    assert states == ["succeeded", "succeeded"]
    assert azure.ends == calm.ends and azure.finished == calm.finished


def test_a_poll_refused_is_asked_again_and_the_step_completes() -> None:
    azure = Azure({0: timedelta(minutes=2)})
    azure.refuse_polls = 2
    runner, states = run(azure, PollPolicy(timeout=timedelta(hours=1)))
    assert states == ["succeeded"] and runner.instances["o1"].status == "Completed"
    assert [t - T0 for t, _ in azure.polls] == [timedelta(minutes=3)]  # two refusals, 30 s apart each
