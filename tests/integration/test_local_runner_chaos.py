"""Chaos in the local runner: a completed activity runs again (redelivery), a crash re-runs every in-flight
activity, orchestrations resume from their histories, and re-executions draw their faults as the first did."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df

from shared.runtime.chaos import Chaos, FaultDraws
from shared.runtime.interleave import Interleaver
from shared.runtime.local_durable import LocalDurableRunner

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class World:
    """Side effects that survive a crash, and a fault stream keyed by attempt counters (as the simulator's)."""

    def __init__(self) -> None:
        self.now = T0
        self.runs: dict[str, int] = {}
        self.attempts: dict[str, int] = {}
        self.draws: list[tuple[str, int]] = []

    def draw(self, key: str) -> int:
        n = self.attempts.get(key, 0)
        self.attempts[key] = n + 1
        self.draws.append((key, n))
        return n


def make_app(world: World) -> df.DFApp:
    app = df.DFApp()

    @app.activity_trigger(input_name="payload")
    def work(payload: dict[str, Any]) -> dict[str, Any]:
        key = payload["key"]
        world.runs[key] = world.runs.get(key, 0) + 1
        attempt = world.draw(key)
        world.now += timedelta(minutes=payload["minutes"])
        return {"key": key, "attempt": attempt}

    @app.orchestration_trigger(context_name="context")
    def fan(context: df.DurableOrchestrationContext) -> Any:
        first = yield context.task_all([context.call_activity("work", {"key": f"k{i}", "minutes": 1 + i})
                                        for i in range(6)])
        yield context.create_timer(context.current_utc_datetime + timedelta(minutes=5))
        second = yield context.call_activity("work", {"key": "last", "minutes": 2})
        return [r["attempt"] for r in first] + [second["attempt"]]

    return app


def make(world: World, chaos: Chaos | None, *, interleaved: bool = False) -> LocalDurableRunner:
    def set_clock(t: datetime) -> None:
        world.now = t

    def read_clock() -> datetime:
        return world.now

    draws = FaultDraws(lambda: world.attempts, lambda d: setattr(world, "attempts", d))
    interleaver = Interleaver(5, set_clock=set_clock, read_clock=read_clock) if interleaved else None
    return LocalDurableRunner(make_app(world), start=T0, set_clock=set_clock, read_clock=read_clock,
                              chaos=chaos, draws=draws, interleaver=interleaver)


def test_without_chaos_each_activity_runs_once() -> None:
    world = World()
    r = make(world, None)
    r.start_new("fan", "x", None)
    r.run()
    assert r.result("x") == [0] * 7
    assert set(world.runs.values()) == {1}


def test_every_activity_redelivered_runs_twice_and_the_second_run_draws_as_the_first() -> None:
    world = World()
    chaos = Chaos(seed=1, rate=1.0)
    chaos._rng.random = lambda: 0.5  # type: ignore[method-assign]  # always strike, always a redelivery
    r = make(world, chaos)
    r.start_new("fan", "x", None)
    r.run()
    assert r.result("x") == [0] * 7  # the redelivered run drew attempt 0 again, as the first did
    assert set(world.runs.values()) == {2}
    assert chaos.stats.redelivered == 7 and chaos.stats.crashes == 0


def test_a_crash_reruns_every_in_flight_activity_and_the_orchestration_resumes_from_history() -> None:
    world = World()
    chaos = Chaos(seed=1, rate=0.5)
    strikes = iter([0.9] * 5 + [0.0, 0.0] + [0.9] * 100)  # no strike x5, then: a strike, and it is a crash

    chaos._rng.random = lambda: next(strikes)  # type: ignore[method-assign]
    r = make(world, chaos)
    r.start_new("fan", "x", None)
    r.run()
    assert chaos.stats.crashes == 1
    assert chaos.stats.reexecuted == 6  # the six activities of the fan-out were all in flight
    assert r.result("x") == [0] * 7
    assert [world.runs[f"k{i}"] for i in range(6)] == [2] * 6 and world.runs["last"] == 1
    assert r.instances["x"].completed_at is not None


def test_a_crash_after_an_interleaved_fan_out_reruns_all_of_it_and_the_orchestration_resumes() -> None:
    world = World()
    chaos = Chaos(seed=1, rate=0.5)
    strikes = iter([0.9] * 5 + [0.0, 0.0] + [0.9] * 100)  # the fan-out's sixth activity: a strike, a crash

    chaos._rng.random = lambda: next(strikes)  # type: ignore[method-assign]
    r = make(world, chaos, interleaved=True)
    r.start_new("fan", "x", None)
    r.run()
    assert chaos.stats.crashes == 1 and chaos.stats.reexecuted == 6
    assert r.result("x") == [0] * 7  # re-runs drew their faults as the first runs did
    assert [world.runs[f"k{i}"] for i in range(6)] == [2] * 6 and world.runs["last"] == 1


def test_chaos_is_seeded_a_seed_gives_the_same_strikes() -> None:
    counts = []
    for _ in range(2):
        world = World()
        chaos = Chaos(seed=7, rate=0.5)
        r = make(world, chaos)
        r.start_new("fan", "x", None)
        r.run()
        assert r.result("x") == [0] * 7
        counts.append((chaos.stats.to_dict(), dict(world.runs)))
    assert counts[0] == counts[1]
    assert counts[0][0]["redelivered"] + counts[0][0]["crashes"] > 0


def test_a_worker_death_inside_an_activity_after_its_side_effect_runs_it_again() -> None:
    from shared.runtime.chaos import WorkerDied

    world = World()
    app = df.DFApp()

    @app.activity_trigger(input_name="payload")
    def dies_once(payload: Any) -> int:
        world.runs["x"] = world.runs.get("x", 0) + 1  # the side effect happens...
        if world.runs["x"] == 1:
            raise WorkerDied("after the side effect")  # ...and the worker dies before returning
        return world.runs["x"]

    @app.orchestration_trigger(context_name="context")
    def once(context: df.DurableOrchestrationContext) -> Any:
        got = yield context.call_activity("dies_once", None)
        return got

    chaos = Chaos(seed=1, rate=0.0)

    def set_clock(t: datetime) -> None:
        world.now = t

    r = LocalDurableRunner(app, start=T0, set_clock=set_clock, read_clock=lambda: world.now, chaos=chaos)
    r.start_new("once", "o", None)
    r.run()
    assert r.result("o") == 2 and world.runs["x"] == 2
    assert chaos.stats.crashes == 1
