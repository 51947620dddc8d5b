"""Every activity is safe to run twice, and a worker may die after any side effect: the rollout still ends with
no VM in an unknown state, nothing left behind, and every scale set at its capacity from before the rollout.

Each case runs a whole rollout in which one activity is hit on every work item: either each run completes and is
redelivered (its result lost, it runs again), or its first run dies right after its first side effect, the re-run
after its second, and so on past its last one: every crash point of that activity is crossed in one rollout."""

from __future__ import annotations

from typing import Any

import pytest

from shared.adapters.simulator.scenario import Scenario, parse_scenario
from shared.bootstrap import Services
from shared.domain.errors import TransientError
from shared.ports import RECORD
from shared.runtime.chaos import Chaos, Strike, WorkerDied
from shared.simulation import SimulationRun, simulate

# a busy fleet with a latent crash (its onset after the shadows are gone, so a delay of minutes changes no decision):
# shadows, the first wave's snapshots during the bake, capacity borrowed, waves, rollbacks, the watch
SCENARIO: dict[str, Any] = {
    "name": "at-least-once", "seed": 11,
    "fleet": {"scale_sets": [{"name": "web", "capacity": 24, "skus": {"Standard_D4s_v5": 1},
                              "load": {"mean": 0.74, "diurnal_amplitude": 0.05, "noise": 0.03}}]},
    "change": {"id": "alo-1", "truth": {"effects": [{"mode": "latent_crash", "probability": 0.3,
                                                     "onset_minutes": 120}]}},
    "policy": {"production_watch_minutes": 180, "first_wave_snapshots_during_bake": True},
}
ACTIVITIES = ["start_rollout", "claim_targets", "begin_create_shadows", "create_shadows", "drive_shadow_load",
              "begin_apply_to_shadows", "apply_to_shadows", "begin_prepare", "begin_snapshot_wave", "begin_apply_wave",
              "begin_restore_vms", "operation_status",
              "analyse_shadows", "decide", "watch_shadows", "teardown_shadows", "prepare", "snapshot_wave",
              "apply_wave",
              "check_production", "reserve_capacity", "restore_vms", "verify_recovered", "release_capacity",
              "settle_capacity", "release_leases", "finish", "begin_snapshot_ahead", "snapshot_ahead"]
WITHOUT_SIDE_EFFECTS = {"operation_status", "begin_prepare"}
"""Polls only read; this scenario's prepare has no VM at risk to snapshot (its record is written by prepare)."""


class Twice(Chaos):
    """Every completed work item of one activity is redelivered."""

    def __init__(self, target: str) -> None:
        super().__init__(seed=0, rate=0.0)
        self.target = target

    def strike(self) -> Strike | None:
        return Strike.REDELIVER if self.current is not None and self.current[0] == self.target else None


class EveryCrashPoint(Chaos):
    """Execution n of a work item of one activity dies after its n-th side effect, until one gets past its last."""

    def __init__(self, target: str) -> None:
        super().__init__(seed=0, rate=0.0)
        self.target = target
        self.executions: dict[tuple[str, str, int], int] = {}
        self.effects = 0

    def begin(self, current: tuple[str, str, int]) -> None:
        super().begin(current)
        self.effects = 0
        if current[0] == self.target:
            self.executions[current] = self.executions.get(current, 0) + 1

    def after_side_effect(self, what: str) -> None:
        if not (self.armed and self.current is not None and self.current[0] == self.target):
            return
        self.effects += 1
        if self.effects == self.executions[self.current]:
            raise WorkerDied(what)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return parse_scenario(SCENARIO)


@pytest.fixture(scope="module")
def calm(scenario: Scenario) -> SimulationRun:
    run = simulate(scenario)
    o = run.outcome
    # rollbacks in the waves (and, when they surprise the watch, the change withdrawn): every recovery path runs
    assert o["outcome"] in ("completed_with_rollbacks", "halted_in_production") and o["vms"]["rolled_back"] > 0
    assert o["capacity"]["max_extra_instances"] > 0, "the scenario must borrow capacity"
    return run


def assert_clean(run: SimulationRun, calm: SimulationRun) -> None:
    o = run.outcome
    assert o["vms"]["unknown_state"] == 0 and o["vms"]["failed_unrecovered"] == 0
    assert o["vms"] == calm.outcome["vms"]
    assert o["outcome"] == calm.outcome["outcome"]
    assert o["leaks"] == {"shadows": 0, "leases": 0, "extra_instances": 0, "snapshots": 0}
    assert o["janitor"] == {"shadows": 0, "leases": 0, "extra_instances": 0}, "the rollout left work for the janitor"
    assert {n: s.capacity for n, s in run.world.scale_sets.items()} == \
        {n: s.original for n, s in run.world.scale_sets.items()}
    record = run.services.store.get_rollout(run.rollout_id)
    expected = calm.services.store.get_rollout(calm.rollout_id)
    assert record is not None and expected is not None and record["state"] == expected["state"]
    assert record["state"] in ("completed", "halted")


@pytest.mark.parametrize("activity", ACTIVITIES)
def test_an_activity_run_twice_changes_nothing(activity: str, scenario: Scenario, calm: SimulationRun) -> None:
    chaos = Twice(activity)
    run = simulate(scenario, chaos=chaos)
    assert chaos.stats.redelivered > 0, f"{activity} never ran"
    assert_clean(run, calm)


@pytest.mark.parametrize("activity", [a for a in ACTIVITIES if a not in WITHOUT_SIDE_EFFECTS])
def test_a_crash_after_each_side_effect_of_an_activity_changes_nothing(activity: str, scenario: Scenario,
                                                                       calm: SimulationRun) -> None:
    chaos = EveryCrashPoint(activity)
    run = simulate(scenario, chaos=chaos)
    assert chaos.stats.crashes > 0, f"{activity} never ran or had no side effect"
    assert_clean(run, calm)


def test_a_worker_dying_between_the_claim_and_its_decision_still_records_the_claim_once(
        scenario: Scenario, calm: SimulationRun) -> None:
    chaos = EveryCrashPoint("claim_targets")
    run = simulate(scenario, chaos=chaos)
    assert chaos.stats.crashes >= 2, "claim_targets must have died after the leases and after the record"
    claims = [d for d in run.outcome["decisions"] if d["kind"] == "claimed"]
    assert len(claims) == 1
    assert claims == [d for d in calm.outcome["decisions"] if d["kind"] == "claimed"]


@pytest.fixture(scope="module")
def halted_at_the_gate() -> Scenario:
    """The same fleet, halted at the approval gate after the bake took its first wave's snapshots."""
    policy = {**SCENARIO["policy"], "approval_required": True, "approval_timeout_minutes": 5,
              "on_approval_timeout": "halt"}
    return parse_scenario({**SCENARIO, "name": "at-least-once-halted", "policy": policy})


@pytest.mark.parametrize("chaos", [Twice("discard_snapshots"), EveryCrashPoint("discard_snapshots")],
                         ids=["twice", "every-crash-point"])
def test_the_snapshots_of_a_halted_rollout_are_deleted_once_however_often_the_delete_runs(
        chaos: Chaos, halted_at_the_gate: Scenario) -> None:
    run = simulate(halted_at_the_gate, chaos=chaos)
    o = run.outcome
    assert chaos.stats.redelivered + chaos.stats.crashes > 0, "discard_snapshots never ran"
    assert o["outcome"] == "halted_before_production"
    assert o["leaks"] == {"shadows": 0, "leases": 0, "extra_instances": 0, "snapshots": 0}
    assert not [i for i in run.world.snapshots if i < run.world.n_production]
    assert [d["kind"] for d in o["decisions"]].count("discard_snapshots") == 1


class FlakyTeardown:
    """Shadow teardown refused with a 429 ``times`` times (then it works), as ARM throttles."""

    def __init__(self, times: int) -> None:
        self.times = times

    def __call__(self, svc: Services) -> Services:
        real = svc.shadows.teardown
        left = [self.times]

        def teardown(ids: Any) -> int:
            if left[0] > 0:
                left[0] -= 1
                raise TransientError("429 Too Many Requests", operation="delete_shadows", status=429)
            return real(ids)

        svc.shadows.teardown = teardown  # type: ignore[method-assign]
        return svc


def test_a_teardown_refused_once_is_retried_and_the_rollout_completes(scenario: Scenario,
                                                                       calm: SimulationRun) -> None:
    run = simulate(scenario, adapt=FlakyTeardown(1))
    assert_clean(run, calm)


def test_a_teardown_that_always_fails_is_recorded_as_a_leak_and_everything_else_is_returned(
        scenario: Scenario, calm: SimulationRun) -> None:
    run = simulate(scenario, adapt=FlakyTeardown(10**6))
    o = run.outcome
    assert run.runner.instances[run.rollout_id].status == "Completed"
    record = run.services.store.get_rollout(run.rollout_id)
    expected = calm.services.store.get_rollout(calm.rollout_id)
    assert record is not None and expected is not None and record["state"] == expected["state"]
    assert record["state"] in ("completed", "halted")  # the waves went well; the leak is recorded
    leaks = [d for d in o["decisions"] if d["kind"] == "leak"]
    assert leaks and "teardown_shadows" in leaks[0]["reason"]
    assert o["vms"] == calm.outcome["vms"]
    assert o["leaks"]["shadows"] > 0  # counted from the world: the janitor could not delete them either
    assert o["leaks"]["leases"] == 0 and o["leaks"]["extra_instances"] == 0
    events = run.services.outcomes.events  # type: ignore[attr-defined]
    assert events[-1]["type"] == "rollout.finished" and events[-1]["summary"]["leaks"]


def test_a_request_whose_target_does_not_exist_ends_with_a_record_and_an_outcome_event(scenario: Scenario) -> None:
    def adapt(svc: Services) -> Services:
        def inventory(ids: Any) -> Any:
            raise TransientError("ResourceNotFound: the scale set does not exist", operation="inventory",
                                 status=404)

        svc.fleet.inventory = inventory  # type: ignore[method-assign]
        return svc

    run = simulate(scenario, adapt=adapt)
    record = run.services.store.get_rollout(run.rollout_id)
    assert record is not None and record["state"] == "failed"
    assert "Activity function 'start_rollout' failed" in record["error"] and "does not exist" in record["error"]
    events = run.services.outcomes.events  # type: ignore[attr-defined]
    assert [e["type"] for e in events] == ["rollout.finished"] and events[0]["state"] == "failed"
    assert run.outcome["leaks"] == {"shadows": 0, "leases": 0, "extra_instances": 0, "snapshots": 0}


def test_a_store_error_while_finishing_does_not_fail_a_rollout_that_went_well(scenario: Scenario,
                                                                                calm: SimulationRun) -> None:
    left = [1]

    def adapt(svc: Services) -> Services:
        real = svc.store.write

        def write(rid: str, kind: str, rows: Any) -> dict[str, str]:
            done = kind == RECORD and any(w.value.get("phase") == "done" for w in rows.values())
            if done and left[0] > 0:  # the record's last write (finish) refused once, as a busy table is
                left[0] -= 1
                raise TransientError("503 Server Busy", operation="write", status=503)
            return real(rid, kind, rows)

        svc.store.write = write  # type: ignore[method-assign]
        return svc

    run = simulate(scenario, adapt=adapt)
    assert left == [0], "finish never wrote the record"
    assert_clean(run, calm)


# errors that surge only above 55% load: the shadows' verdicts hang on the load each is driven at
LOAD_DEPENDENT: dict[str, Any] = {
    "name": "load-dependent-twice", "seed": 2,
    "fleet": {"scale_sets": [{"name": "web", "capacity": 60, "skus": {"Standard_D2s_v5": 1, "Standard_D4s_v5": 1},
                              "load": {"mean": 0.5, "diurnal_amplitude": 0.2, "noise": 0.06}}]},
    "change": {"id": "lt-1", "truth": {"effects": [{"mode": "error_burst", "severity": 0.6,
                                                    "when": {"load_above": 0.55}}]}},
    "policy": {"production_watch_minutes": 60},
}


def test_a_redelivered_shadow_load_drive_measures_nothing_again_and_decides_as_the_undisturbed_run() -> None:
    sc = parse_scenario(LOAD_DEPENDENT)
    calm = simulate(sc)
    chaos = Twice("drive_shadow_load")
    run = simulate(sc, chaos=chaos)
    assert chaos.stats.redelivered == 1

    def loads(r: SimulationRun) -> dict[str, Any]:
        return {k: v["load"] for k, v in r.services.store.get_items(r.rollout_id, "shadow").items()}

    assert loads(run) == loads(calm) and any(v is not None for v in loads(calm).values())
    assert run.outcome["decisions"] == calm.outcome["decisions"]  # same verdicts, at the same minutes
    assert run.outcome["vms"] == calm.outcome["vms"]


def test_a_recovery_verified_again_reports_what_its_first_run_found(scenario: Scenario, calm: SimulationRun) -> None:
    run = simulate(scenario, chaos=Twice("verify_recovered"))

    def recovered(r: SimulationRun) -> list[str]:
        return [d["reason"] for d in r.outcome["decisions"] if d["kind"] == "recovered"]

    assert recovered(calm) and recovered(run) == recovered(calm)
    assert_clean(run, calm)
