"""The local runner is as strict as the Durable extension where a locally green orchestration could fail in
Azure: one test per difference found against the SDK and the extension (sources in shared/runtime/extension.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import pytest

from shared.runtime.extension import InstanceGone, InstanceNotFound
from shared.runtime.local_durable import LocalDurableRunner, OrchestrationFailed

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Result:
    """An activity result that is not plain JSON but that the SDK's df_dumps encodes (it has to_json)."""

    def __init__(self, n: int) -> None:
        self.n = n

    @staticmethod
    def to_json(obj: Result) -> dict[str, int]:
        return {"n": obj.n}

    @staticmethod
    def from_json(data: dict[str, int]) -> Result:
        return Result(data["n"])


def make_app(state: dict[str, Any]) -> df.DFApp:
    app = df.DFApp()

    @app.activity_trigger(input_name="payload")
    def a(payload: Any) -> str:
        return "a"

    @app.activity_trigger(input_name="payload")
    def b(payload: Any) -> str:
        return "b"

    @app.activity_trigger(input_name="payload")
    def fails(payload: Any) -> str:
        raise RuntimeError("disk full")

    @app.activity_trigger(input_name="payload")
    def rich(payload: Any) -> Result:
        return Result(7)

    @app.activity_trigger(input_name="payload")
    def unencodable(payload: Any) -> Any:
        return {1, 2}

    @app.activity_trigger(input_name="payload")
    def echo(payload: Any) -> Any:
        state["echo_input"] = payload
        return payload

    @app.orchestration_trigger(context_name="context")
    def drifting(context: df.DurableOrchestrationContext) -> Any:
        if not state.get("changed"):
            state["changed"] = True  # the code "changes" after the first turn, as a redeploy would
            x = yield context.call_activity("a", None)
            return x
        got = yield context.task_all([context.call_activity("b", None), context.call_activity("a", None)])
        return got

    @app.orchestration_trigger(context_name="context")
    def calls_failing(context: df.DurableOrchestrationContext) -> Any:
        try:
            yield context.call_activity("fails", None)
        except Exception as exc:
            return str(exc).split("\n")[0]
        return "no error"

    @app.orchestration_trigger(context_name="context")
    def child_fails(context: df.DurableOrchestrationContext) -> Any:
        yield context.call_activity("a", None)
        raise ValueError("child broke")

    @app.orchestration_trigger(context_name="context")
    def parent(context: df.DurableOrchestrationContext) -> Any:
        try:
            yield context.call_sub_orchestrator("child_fails", None, "p:child")
        except Exception as exc:
            return str(exc).split("\n")[0]
        return "no error"

    @app.orchestration_trigger(context_name="context")
    def gets_rich(context: df.DurableOrchestrationContext) -> Any:
        r = yield context.call_activity("rich", None)
        return {"type": type(r).__name__, "n": r.n}

    @app.orchestration_trigger(context_name="context")
    def gets_unencodable(context: df.DurableOrchestrationContext) -> Any:
        try:
            yield context.call_activity("unencodable", None)
        except Exception as exc:
            return str(exc).split("\n")[0]
        return "no error"

    @app.orchestration_trigger(context_name="context")
    def sends_text(context: df.DurableOrchestrationContext) -> Any:
        got = yield context.call_activity("echo", "plain words")
        return got

    @app.orchestration_trigger(context_name="context")
    def sleeps(context: df.DurableOrchestrationContext) -> Any:
        state["schema"] = context._replay_schema.value
        yield context.create_timer(context.current_utc_datetime + timedelta(days=10))
        return "woke"

    @app.orchestration_trigger(context_name="context")
    def waits(context: df.DurableOrchestrationContext) -> Any:
        got = yield context.wait_for_external_event("go")
        return got

    return app


def runner(state: dict[str, Any] | None = None) -> LocalDurableRunner:
    clock = {"now": T0}

    def set_clock(t: datetime) -> None:
        clock["now"] = t

    return LocalDurableRunner(make_app(state if state is not None else {}), start=T0, set_clock=set_clock,
                              read_clock=lambda: clock["now"])


def test_a_replay_that_schedules_other_tasks_than_its_history_fails_as_non_deterministic() -> None:
    r = runner()
    r.start_new("drifting", "d1", None)
    r.run()
    inst = r.instances["d1"]
    assert inst.status == "Failed"
    assert inst.error is not None and inst.error.startswith("Non-Deterministic workflow detected: ")
    assert "sequence number 0 named 'a'" in inst.error and "named 'b'" in inst.error
    with pytest.raises(OrchestrationFailed, match="Non-Deterministic"):
        r.result("d1")


def test_an_activity_failure_reaches_the_orchestrator_worded_as_the_extension_words_it() -> None:
    r = runner()
    r.start_new("calls_failing", "f1", None)
    r.run()
    assert r.result("f1").strip() == "Activity function 'fails' failed: RuntimeError: disk full"
    failed = [e for e in r.instances["f1"].history if e["EventType"] == 6]
    assert json.loads(failed[0]["Details"]) == {"ClassName": "RuntimeError", "Message": "disk full"}


def test_a_sub_orchestration_failure_reaches_the_parent_worded_as_the_extension_words_it() -> None:
    r = runner()
    r.start_new("parent", "p", None)
    r.run()
    assert r.result("p").strip() == "Orchestrator function 'child_fails' failed: child broke"
    assert r.instances["p:child"].error == "Orchestrator function 'child_fails' failed: child broke"


def test_activity_results_go_through_the_sdks_df_dumps_and_df_loads() -> None:
    r = runner()
    r.start_new("gets_rich", "r1", None)
    r.run()
    assert r.result("r1") == {"type": "Result", "n": 7}


def test_an_activity_result_the_worker_cannot_encode_fails_the_activity() -> None:
    r = runner()
    r.start_new("gets_unencodable", "u1", None)
    r.run()
    assert "activity trigger output must be json serializable" in r.result("u1")


def test_an_activity_input_that_is_a_plain_string_reaches_the_activity_unchanged() -> None:
    state: dict[str, Any] = {}
    r = runner(state)
    r.start_new("sends_text", "t1", None)
    r.run()
    assert state["echo_input"] == "plain words" and r.result("t1") == "plain words"


def test_an_event_for_an_unknown_instance_is_refused_as_the_clients_404() -> None:
    r = runner()
    with pytest.raises(InstanceNotFound, match="No instance with ID nobody found"):
        r.raise_event("nobody", "go", 1)


def test_an_event_for_a_finished_instance_is_refused_as_the_clients_410() -> None:
    r = runner()
    r.start_new("waits", "w1", None)
    r.raise_event("w1", "go", "first")
    r.run()
    assert r.result("w1") == "first"
    with pytest.raises(InstanceGone, match="w1 is gone: either completed or failed"):
        r.raise_event("w1", "go", "second")


def test_the_replay_context_has_schema_v3_and_splits_a_long_timer_as_the_extension_limits_it() -> None:
    state: dict[str, Any] = {}
    r = runner(state)
    r.start_new("sleeps", "s1", None)
    r.run()
    assert state["schema"] == 2  # ReplaySchema.V3
    assert r.result("s1") == "woke"
    fires = [datetime.fromisoformat(e["FireAt"]) for e in r.instances["s1"].history if e["EventType"] == 10]
    assert fires == [T0 + timedelta(days=3), T0 + timedelta(days=6), T0 + timedelta(days=10)]  # 3-day steps
    assert r.instances["s1"].completed_at == T0 + timedelta(days=10)
