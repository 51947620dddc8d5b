"""The local runner drives orchestrators through the Durable SDK's own replay: retries, timers, fan-out,
sub-orchestrations, external events and continue-as-new behave as the Durable Task extension makes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import pytest

from shared.runtime.extension import InstanceGone
from shared.runtime.local_durable import LocalDurableRunner, OrchestrationFailed

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def set(self, t: datetime) -> None:
        self.now = t

    def read(self) -> datetime:
        return self.now


def make_app(clock: Clock, calls: dict[str, int]) -> df.DFApp:
    app = df.DFApp()

    @app.activity_trigger(input_name="payload")
    def flaky(payload: dict[str, Any]) -> str:
        calls["flaky"] = calls.get("flaky", 0) + 1
        if calls["flaky"] < payload["succeed_on"]:
            raise RuntimeError(f"attempt {calls['flaky']} failed")
        return f"ok after {calls['flaky']}"

    @app.activity_trigger(input_name="payload")
    def slow(payload: dict[str, Any]) -> float:
        clock.set(clock.now + timedelta(minutes=payload["minutes"]))  # the work takes simulated time
        return payload["minutes"]

    @app.orchestration_trigger(context_name="context")
    def retrying(context: df.DurableOrchestrationContext) -> Any:
        opts = df.RetryOptions(first_retry_interval_in_milliseconds=60_000, max_number_of_attempts=3)
        result = yield context.call_activity_with_retry("flaky", opts, context.get_input())
        return result

    @app.orchestration_trigger(context_name="context")
    def fan_out(context: df.DurableOrchestrationContext) -> Any:
        results = yield context.task_all([context.call_activity("slow", {"minutes": m}) for m in (5, 2, 9)])
        child = yield context.call_sub_orchestrator("child", {"x": 2}, f"{context.instance_id}:child")
        return {"results": results, "child": child, "finished": context.current_utc_datetime.isoformat()}

    @app.orchestration_trigger(context_name="context")
    def child(context: df.DurableOrchestrationContext) -> Any:
        yield context.create_timer(context.current_utc_datetime + timedelta(minutes=10))
        return context.get_input()["x"] * 21

    @app.orchestration_trigger(context_name="context")
    def gate(context: df.DurableOrchestrationContext) -> Any:
        timeout = context.create_timer(context.current_utc_datetime + timedelta(minutes=30))
        approval = context.wait_for_external_event("approve")
        winner = yield context.task_any([approval, timeout])
        if winner == approval:
            timeout.cancel()
            return {"approved_by": approval.result}
        return {"timed_out": True}

    @app.orchestration_trigger(context_name="context")
    def counter(context: df.DurableOrchestrationContext) -> Any:
        n = context.get_input()["n"]
        yield context.create_timer(context.current_utc_datetime + timedelta(minutes=1))
        if n < 5:
            context.continue_as_new({"n": n + 1})
            return None
        return n

    @app.orchestration_trigger(context_name="context")
    def broken(context: df.DurableOrchestrationContext) -> Any:
        yield context.call_activity("slow", {"minutes": 1})
        raise ValueError("boom")

    return app


def runner(calls: dict[str, int] | None = None) -> tuple[LocalDurableRunner, Clock]:
    clock = Clock()
    r = LocalDurableRunner(make_app(clock, calls if calls is not None else {}), start=T0, set_clock=clock.set,
                           read_clock=clock.read)
    return r, clock


def event_types(r: LocalDurableRunner, iid: str) -> list[int]:
    return [e["EventType"] for e in r.instances[iid].history]


def test_retry_waits_the_retry_interval_and_succeeds_on_a_later_attempt() -> None:
    calls: dict[str, int] = {}
    r, _ = runner(calls)
    r.start_new("retrying", "i1", {"succeed_on": 3})
    r.run()
    assert r.result("i1") == "ok after 3"
    types = event_types(r, "i1")
    assert types.count(6) == 2  # two TaskFailed
    assert types.count(11) == 2  # two retry timers fired
    assert r.instances["i1"].completed_at == T0 + timedelta(minutes=2)


def test_retry_gives_up_after_max_attempts_and_the_orchestration_fails() -> None:
    r, _ = runner()
    r.start_new("retrying", "i2", {"succeed_on": 99})
    r.run()
    with pytest.raises(OrchestrationFailed, match="attempt 3 failed"):
        r.result("i2")


def test_parallel_activities_take_the_time_of_the_slowest_then_the_sub_orchestration_runs() -> None:
    r, _ = runner()
    r.start_new("fan_out", "f1", None)
    r.run()
    out = r.result("f1")
    assert out["results"] == [5, 2, 9]
    assert out["child"] == 42
    assert out["finished"] == (T0 + timedelta(minutes=19)).isoformat()
    assert r.instances["f1:child"].parent == "f1"


def test_external_event_wins_the_race_against_the_timeout() -> None:
    r, _ = runner()
    r.start_new("gate", "g1", None)
    r.raise_event("g1", "approve", "alice", at=T0 + timedelta(minutes=5))
    r.run()
    assert r.result("g1") == {"approved_by": "alice"}


def test_timeout_wins_when_no_event_comes() -> None:
    r, _ = runner()
    r.start_new("gate", "g2", None)
    r.run()
    assert r.result("g2") == {"timed_out": True}
    assert r.instances["g2"].completed_at == T0 + timedelta(minutes=30)


def test_continue_as_new_restarts_with_a_fresh_history() -> None:
    r, _ = runner()
    r.start_new("counter", "c1", {"n": 1})
    r.run()
    assert r.result("c1") == 5
    assert r.instances["c1"].generations == 5
    assert len(r.instances["c1"].history) < 10


def test_starting_the_same_instance_id_twice_starts_it_once() -> None:
    calls: dict[str, int] = {}
    r, _ = runner(calls)
    r.start_new("retrying", "same", {"succeed_on": 1})
    r.start_new("retrying", "same", {"succeed_on": 1})
    r.run()
    assert calls["flaky"] == 1


def test_an_unhandled_orchestrator_exception_fails_the_instance_with_its_message() -> None:
    r, _ = runner()
    r.start_new("broken", "b1", None)
    r.run()
    assert r.instances["b1"].status == "Failed"
    with pytest.raises(OrchestrationFailed, match="boom"):
        r.result("b1")


def test_status_list_and_terminate_answer_as_the_durable_client_does() -> None:
    r, _ = runner()
    assert r.status("nope") is None
    r.start_new("gate", "s1", None)
    r.start_new("child", "s2", {"x": 1})
    assert r.status("s1")["runtime_status"] == "Pending"  # type: ignore[index]
    r.run(until=T0)
    assert r.status("s1")["runtime_status"] == "Running"  # type: ignore[index]
    r.terminate("s1", "operator said so")
    with pytest.raises(InstanceGone, match="s1 is gone"):  # the client's 410
        r.raise_event("s1", "approve", "late")
    r.run()
    s1 = r.status("s1")
    assert s1 is not None and s1["runtime_status"] == "Terminated" and s1["output"] == "operator said so"
    assert [s["instance_id"] for s in r.list_instances(name="gate")] == ["s1"]
    assert {s["instance_id"] for s in r.list_instances()} == {"s1", "s2"}


def test_a_run_can_stop_where_a_test_wants_to_act() -> None:
    r, _ = runner()
    r.start_new("fan_out", "f2", None)
    r.run(stop=lambda: "f2:child" in r.instances)
    assert r.instances["f2"].status == "Running" and "f2:child" in r.instances
    r.run()
    assert r.result("f2")["child"] == 42
