"""Whole rollouts: the real function app's orchestrators, replayed by the Durable SDK, on the simulator."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import yaml

from shared.adapters.simulator.adapters import SimFleet
from shared.adapters.simulator.scenario import load_scenario, parse_scenario
from shared.bootstrap import Services
from shared.domain.errors import TransientError
from shared.domain.features import FEATURES
from shared.domain.model import ApplyResult, ChangeSpec
from shared.domain.policy import RolloutPolicy
from shared.simulation import SimulationRun, simulate

Scenario = Callable[[str], Path]


def run(path: Path, **kw: object) -> SimulationRun:
    return simulate(load_scenario(path), **kw)  # type: ignore[arg-type]


def kinds(run_: SimulationRun) -> list[str]:
    return [d["kind"] for d in run_.outcome["decisions"]]


def assert_shadows_gone(run_: SimulationRun) -> None:
    w = run_.world
    assert w.shadow_rows, "the rollout made no shadows"
    assert all(w.t["exists_to"][r] <= w.clock.now for r in w.shadow_rows)


def test_good_change_reaches_every_vm_and_removes_the_shadows(scenario_path: Scenario) -> None:
    r = run(scenario_path("good-change"))
    o = r.outcome
    assert o["outcome"] == "completed"
    assert o["vms"]["on_new_config"] == o["vms"]["total"] == 60
    assert o["production_vms_impaired"] == 0
    assert o["shadow"]["strata_covered"] == o["shadow"]["strata_total"]
    assert "rollback_vm" not in kinds(r) and "skip_stratum" not in kinds(r)
    assert_shadows_gone(r)
    assert r.services.store.get_rollout(r.rollout_id)["state"] == "completed"  # type: ignore[index]


def test_change_failing_on_one_sku_is_stopped_for_that_stratum_before_production(scenario_path: Scenario) -> None:
    r = run(scenario_path("crash-one-sku"))
    o = r.outcome
    assert o["outcome"] == "completed_with_exclusions"
    assert o["production_vms_impaired"] == 0
    items = r.services.store.get_items(r.rollout_id, "vm")
    untouched = [v for v in items.values() if "apply" not in v]
    assert untouched and all(v["info"]["sku"] == "Standard_D2s_v5" for v in untouched)
    assert all("apply" in v for v in items.values() if v["info"]["sku"] != "Standard_D2s_v5")
    skips = [d for d in o["decisions"] if d["kind"] == "skip_stratum"]
    assert skips and all("D2s_v5" in d["reason"] and "2/2 failing" in d["reason"]
                         and "lower bound > tolerable 2.0%" in d["reason"] for d in skips)
    assert_shadows_gone(r)


def test_latent_failure_is_caught_in_production_and_the_change_withdrawn_from_every_changed_vm(
        scenario_path: Scenario) -> None:
    r = run(scenario_path("latent-crash"))
    o = r.outcome
    assert o["outcome"] == "halted_in_production"
    assert o["vms"]["failed_unrecovered"] == 0 and o["vms"]["unknown_state"] == 0
    assert o["vms"]["rolled_back"] == o["vms"]["total"] > o["production_vms_impaired"] > 0
    withdraw = [d for d in o["decisions"] if d["kind"] == "withdraw_change"]
    assert len(withdraw) == 1 and "the change is withdrawn from the" in withdraw[0]["reason"]
    assert "P(>= " in withdraw[0]["reason"]
    items = r.services.store.get_items(r.rollout_id, "vm")
    rolled = [v for v in items.values() if v.get("rollback")]
    assert len(rolled) == o["vms"]["rolled_back"]
    for v in rolled:
        assert v["rollback"]["state"] == "verified"
        assert v["actions"][-2:] == ["restore", "post_rollback_script"]
        assert v["config"] == "old"
    assert "recovered" in kinds(r)
    events = r.services.outcomes.events  # type: ignore[attr-defined]
    rollbacks = [e for e in events if e["type"] == "rollout.rollback"]
    assert rollbacks and sum(e["summary"]["restored"] for e in rollbacks) == o["vms"]["rolled_back"]
    assert len({e["event_id"] for e in events}) == len(events)
    assert events[-1]["type"] == "rollout.finished" and events[-1]["state"] == "halted"
    # the VMs that would have crashed later were restored before they did: each restore took minutes
    assert o["impaired_vm_minutes"] < 30 * o["production_vms_impaired"]


def test_confident_fleet_wide_failure_halts_before_any_production_vm(scenario_path: Scenario) -> None:
    r = run(scenario_path("fleet-wide-crash"))
    o = r.outcome
    assert o["outcome"] == "halted_before_production"
    assert o["vms"]["never_touched"] == o["vms"]["total"]
    halt = [d for d in o["decisions"] if d["kind"] == "halt_before_production"]
    assert len(halt) == 1 and ">= halt share 50%" in halt[0]["reason"]
    [final] = r.services.outcomes.events  # type: ignore[attr-defined]
    assert final["type"] == "rollout.finished" and final["state"] == "halted"
    assert_shadows_gone(r)


class FailingProductionFleet(SimFleet):
    """Azure refuses every apply to production: the rollout must end cleanly and leave nothing behind."""

    def apply_change(self, vm_ids: Sequence[str], change: ChangeSpec, *,
                     timeout_minutes: float) -> list[ApplyResult]:
        if any("shadow" not in v for v in vm_ids):
            raise TransientError("ARM answered 503 after the SDK's retries", operation="run_command", status=503)
        return super().apply_change(vm_ids, change, timeout_minutes=timeout_minutes)


def test_shadows_are_torn_down_and_the_rollout_recorded_when_an_activity_fails(scenario_path: Scenario) -> None:
    def adapt(s: Services) -> Services:
        s.fleet = FailingProductionFleet(s.fleet.world)  # type: ignore[attr-defined]
        return s

    r = run(scenario_path("good-change"), adapt=adapt)
    record = r.services.store.get_rollout(r.rollout_id)
    assert record is not None and record["state"] == "failed"
    assert "503" in record["error"]
    assert r.outcome["vms"]["never_touched"] == 60
    assert_shadows_gone(r)
    assert r.runner.instances[r.rollout_id].status == "Completed"


class FleetFailingAfterFirstWave(SimFleet):
    """ARM refuses every production apply after the first one."""

    calls = 0

    def apply_change(self, vm_ids: Sequence[str], change: ChangeSpec, *,
                     timeout_minutes: float) -> list[ApplyResult]:
        if any("shadow" not in v for v in vm_ids):
            FleetFailingAfterFirstWave.calls += 1
            if FleetFailingAfterFirstWave.calls > 1:
                raise TransientError("ARM answered 503 after the SDK's retries", operation="run_command", status=503)
        return super().apply_change(vm_ids, change, timeout_minutes=timeout_minutes)


def test_vms_changed_before_an_error_are_still_watched_and_restored() -> None:
    def adapt(s: Services) -> Services:
        FleetFailingAfterFirstWave.calls = 0
        s.fleet = FleetFailingAfterFirstWave(s.fleet.world)  # type: ignore[attr-defined]
        return s

    sc = parse_scenario({"name": "late-crash", "seed": 3, "fleet": {"scale_sets": [{"name": "web", "capacity": 40}]},
                         "change": {"id": "c", "truth": {"effects": [{"mode": "latent_crash", "onset_minutes": 60}]}}})
    r = simulate(sc, adapt=adapt)
    record = r.services.store.get_rollout(r.rollout_id)
    assert record is not None and record["state"] == "failed" and "503" in record["error"]
    changed = [v for v in r.services.store.get_items(r.rollout_id, "vm").values() if "apply" in v]
    assert changed and len(changed) < 40
    o = r.outcome
    assert o["outcome"] == "halted_in_production"
    assert o["vms"]["rolled_back"] == len(changed) and o["vms"]["failed_unrecovered"] == 0


def test_same_scenario_and_seed_give_identical_outcomes(scenario_path: Scenario) -> None:
    a = run(scenario_path("latent-crash")).outcome
    b = run(scenario_path("latent-crash")).outcome
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_histories_stay_bounded_as_the_fleet_grows() -> None:
    def fleet(n: int) -> SimulationRun:
        return simulate(parse_scenario({
            "name": f"f{n}", "fleet": {"scale_sets": [{"name": f"s{i}", "capacity": n // 4} for i in range(4)]},
            "change": {"id": "c"}, "policy": {"production_watch_minutes": 60}}))

    small, large = fleet(40), fleet(2000)
    assert large.outcome["outcome"] == "completed"
    assert large.stats.max_history <= small.stats.max_history + 4 * 16 * 3


def test_predictions_and_actions_are_recorded_per_vm(scenario_path: Scenario) -> None:
    r = run(scenario_path("crash-one-sku"))
    items = r.services.store.get_items(r.rollout_id, "vm")
    for v in items.values():
        assert "risk" in v and "evidence" in v and "config" in v and v["risk_source"]
        assert list(v["features"]) == list(FEATURES)
        assert v["features"]["own_observed"] >= 1 and v["features"]["vm_vcpus"] in (2.0, 4.0)
        if v["info"]["sku"] == "Standard_D2s_v5":
            assert v["features"]["own_apply_fail"] == 1.0
        if v["skipped"]:
            assert v["risk"] >= RolloutPolicy().skip_probability and v["config"] == "old" and "apply" not in v
        else:
            assert v["config"] == "new" and v["actions"][:2] == ["snapshot", "apply"]
    # the crashing SKU's VMs are the ones skipped, and every VM that proceeds is scored below every skipped one
    # (the shipped model gives the healthy SKUs about 0.1 here: a sibling stratum failed; the judge gave ~0)
    skipped = [v for v in items.values() if v["skipped"]]
    proceeding = [v for v in items.values() if not v["skipped"]]
    assert skipped and {v["info"]["sku"] for v in skipped} == {"Standard_D2s_v5"}
    assert max(v["risk"] for v in proceeding) < min(v["risk"] for v in skipped)


def test_a_target_without_the_guest_kit_is_refused_before_anything_is_created() -> None:
    from shared.adapters.simulator.scenario import parse_scenario
    from shared.simulation import simulate

    sc = parse_scenario({"name": "no-kit", "seed": 4, "change": {"id": "kit-1"},
                         "fleet": {"scale_sets": [{"name": "web", "capacity": 10},
                                                  {"name": "api", "capacity": 10,
                                                   "extensions": ["AzureMonitorLinuxAgent"]}]}})
    run = simulate(sc)
    record = run.services.store.get_rollout(run.rollout_id)
    assert record is not None and record["state"] == "refused"
    assert record["refused"].startswith("guest prerequisites missing on 1 of 2 target scale sets: api lacks "
                                        "shadow-rollout-guest")
    assert run.runner.instances[run.rollout_id].custom_status["phase"] == "refused"
    assert run.outcome["shadow"]["instances"] == 0 and run.outcome["vms"]["on_new_config"] == 0
    assert "refused" in [d["kind"] for d in run.outcome["decisions"]]


def _minutes(run_: SimulationRun, kind: str) -> list[float]:
    return [float(d["minute"]) for d in run_.outcome["decisions"] if d["kind"] == kind]


def test_a_clean_bake_ends_at_the_minimum_and_the_shadows_lead_every_wave(scenario_path: Scenario) -> None:
    r = run(scenario_path("good-change"))
    o = r.outcome
    assert o["outcome"] == "completed"
    policy = RolloutPolicy()
    (baseline,) = _minutes(r, "baseline")
    (bake_end,) = _minutes(r, "bake_end")
    (planned,) = _minutes(r, "plan_waves")
    (teardown,) = _minutes(r, "teardown_shadows")
    # the bake stopped as soon as the sequential tests allowed, well before the fixed bake would have
    assert bake_end - baseline < policy.baseline_minutes + policy.min_bake_minutes + 5
    assert bake_end - baseline < policy.baseline_minutes + policy.bake_minutes
    waves = next(d for d in o["decisions"] if d["kind"] == "plan_waves")
    assert "low risk" in waves["reason"] and int(waves["reason"].split(" waves of")[0]) < len(policy.wave_fractions)
    # the shadows were kept through the waves, and the last wave began after they had baked the whole bake
    assert teardown > planned + policy.bake_minutes - policy.min_bake_minutes
    assert o["duration_minutes"] >= baseline + policy.baseline_minutes + policy.bake_minutes
    assert_shadows_gone(r)


def test_harm_that_shows_on_the_shadows_after_the_bake_halts_the_waves_and_withdraws_the_change() -> None:
    data = yaml.safe_load((Path(__file__).parents[1] / "scenarios" / "good-change.yaml").read_text())
    data["name"] = "leak-after-bake"
    data["change"]["truth"] = {"effects": [{"mode": "memory_leak", "severity": 0.4, "onset_minutes": 15}]}
    r = simulate(parse_scenario(data))
    o = r.outcome
    assert o["outcome"] == "halted_in_production"
    halts = [d for d in o["decisions"] if d["kind"] == "halt_in_production"]
    assert halts and "the shadows lead production, so no further wave" in halts[0]["reason"]
    withdraw = [d for d in o["decisions"] if d["kind"] == "withdraw_change"]
    assert len(withdraw) == 1 and withdraw[0]["minute"] == halts[0]["minute"]
    assert o["vms"]["on_new_config"] == 0 and o["vms"]["failed_unrecovered"] == 0
    assert o["vms"]["rolled_back"] < o["vms"]["total"]  # the last wave never went
    assert_shadows_gone(r)


def test_a_halt_between_waves_withdraws_the_change_from_the_waves_already_done() -> None:
    # a flap on 15% of the VMs, which the shadows of this seed miss: the production check after a wave halts, and
    # the VMs of the earlier waves that have not failed yet are restored with the failing ones, at that check
    sc = parse_scenario({"name": "flap-some", "seed": 1, "fleet": {"scale_sets": [{"name": "web", "capacity": 120}]},
                         "change": {"id": "c", "truth": {"effects": [
                             {"mode": "health_flap", "probability": 0.15, "severity": 0.3}]}}})
    r = simulate(sc)
    o = r.outcome
    assert o["outcome"] == "halted_in_production"
    (halt,) = [d for d in o["decisions"] if d["kind"] == "halt_in_production"]
    (withdraw,) = [d for d in o["decisions"] if d["kind"] == "withdraw_change"]
    assert withdraw["minute"] == halt["minute"] and "the change is withdrawn from the" in withdraw["reason"]
    assert o["vms"]["on_new_config"] == 0 and o["vms"]["failed_unrecovered"] == 0 and o["vms"]["rolled_back"] > 0
    assert_shadows_gone(r)


def test_the_watch_after_the_waves_looks_as_often_as_the_leads_between_waves_ask() -> None:
    r = simulate(load_scenario(Path(__file__).parents[1] / "scenarios" / "good-change.yaml"))
    assert r.outcome["outcome"] == "completed"
    (cadence,) = [d for d in r.services.store.decisions(r.rollout_id) if d["kind"] == "watch_cadence"]
    record = r.services.store.get_rollout(r.rollout_id) or {}
    started = datetime.fromisoformat(record["started_at"])
    firsts: dict[int, float] = {}
    for v in r.services.store.get_items(r.rollout_id, "vm").values():
        minute = round((datetime.fromisoformat(v["applied_at"]) - started).total_seconds() / 60.0, 1)
        firsts[v["wave"]] = min(firsts.get(v["wave"], minute), minute)
    assert cadence["data"]["wave_starts"] == sorted(firsts.values())  # the waves' own starts, from their VMs
    starts = sorted(firsts.values())
    policy = RolloutPolicy()
    lead = min(b - a for a, b in pairwise(starts))
    expected = max(policy.bake_check_minutes, min(policy.watch_interval_minutes, lead - policy.unhealthy_probe_minutes))
    assert cadence["data"]["interval"] == round(expected, 3)


def test_a_denser_watch_replays_about_as_much_per_watched_hour_as_the_reference_one() -> None:
    # a generation of the watch holds fewer looks at a shorter interval: the replay work per look stays bounded
    def watched(interval: int) -> SimulationRun:
        return simulate(parse_scenario({
            "name": "w", "fleet": {"scale_sets": [{"name": "s", "capacity": 12}]}, "change": {"id": "c"},
            "policy": {"production_watch_minutes": 360, "watch_interval_minutes": interval, "wave_fractions": [1.0],
                       "adaptive_waves": False}}))

    dense, sparse = watched(2), watched(10)
    assert dense.outcome["outcome"] == sparse.outcome["outcome"] == "completed"
    for r, interval in ((dense, 2.0), (sparse, 10.0)):
        (cadence,) = [d for d in r.services.store.decisions(r.rollout_id) if d["kind"] == "watch_cadence"]
        assert cadence["data"]["interval"] == interval  # one wave: the policy's interval
    assert dense.stats.turns > 3 * sparse.stats.turns  # five times the looks over the same six hours
    # ... and about the same replay work (21,268 events against 6,268 when every generation held 12 looks)
    assert dense.stats.replayed_events <= 1.5 * sparse.stats.replayed_events
