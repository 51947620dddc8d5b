"""Each peer's defining behaviour on small fleets, and the Kayenta judge on its own."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from shared.adapters.simulator.accounting import affected_if_applied
from shared.adapters.simulator.scenario import Scenario, parse_scenario
from shared.adapters.simulator.world import FleetWorld
from shared.bench.truth import change_truth
from shared.domain.model import ChangeSpec
from shared.strategies import STRATEGIES, canary_mannwhitney, kayenta, linear_alarm


def scenario(effects: list[dict[str, Any]], capacity: int = 50, seed: int = 7, **load: float) -> Scenario:
    return parse_scenario({
        "name": "t", "seed": seed,
        "fleet": {"scale_sets": [{"name": "web", "capacity": capacity, "skus": {"Standard_D4s_v5": 1},
                                  "load": {"mean": 0.45, "noise": 0.03, **load}}]},
        "change": {"id": "c1", "truth": {"effects": effects}}})


def kinds(outcome: dict[str, Any]) -> list[str]:
    return [d["kind"] for d in outcome["decisions"]]


def reasons(outcome: dict[str, Any], kind: str) -> str:
    return " ".join(d["reason"] for d in outcome["decisions"] if d["kind"] == kind)


# ---------------------------------------------------------------------------------------------- vmss-rolling
def test_vmss_rolling_stops_when_upgraded_unhealthy_exceeds_20_percent_and_rolls_back_failed_instances() -> None:
    sc = scenario([{"mode": "crash_on_apply", "when": {"zones": ["1"]}}])  # a third of the VMs
    o = STRATEGIES["vmss-rolling"](sc, sc.seed)
    assert o["outcome"] == "halted_in_production"
    assert "maxUnhealthyUpgradedInstancePercent 20" in reasons(o, "halt_in_production")
    assert o["vms"]["never_touched"] > 0  # the later batches never started
    assert o["vms"]["failed_unrecovered"] == 0 and o["vms"]["rolled_back"] == o["production_vms_impaired"] > 0
    assert o["vms"]["on_new_config"] > 0  # healthy upgraded instances keep the new model


def test_vmss_rolling_leaves_failed_instances_when_the_policy_is_not_breached() -> None:
    sc = scenario([{"mode": "crash_on_apply", "probability": 0.08}], capacity=100)
    o = STRATEGIES["vmss-rolling"](sc, sc.seed)
    assert "halt_in_production" not in kinds(o)
    assert o["vms"]["never_touched"] == 0 and o["vms"]["rolled_back"] == 0
    assert o["vms"]["failed_unrecovered"] == o["production_vms_impaired"] > 0
    assert o["snapshots_taken"] == 100  # one per instance, the previous model for a rollback


def test_vmss_rolling_upgrades_every_set_in_batches_of_20_percent_on_a_good_change() -> None:
    sc = scenario([], capacity=23)
    o = STRATEGIES["vmss-rolling"](sc, sc.seed)
    assert o["outcome"] == "completed"
    assert len([k for k in kinds(o) if k == "batch"]) == 5  # ceil(23 / ceil(0.2 * 23)) = ceil(23 / 5)


# ---------------------------------------------------------------------------------------------- the Kayenta judge
def series(rng: np.random.Generator, cpu: float = 40.0, n: int = 60) -> dict[str, np.ndarray]:
    return {"cpu": rng.normal(cpu, 1.5, n), "memory_available": rng.normal(50, 0.8, n),
            "network": rng.normal(8e7, 2e6, n), "error_log_rate": rng.poisson(1.4, n).astype(float),
            "health_failures": np.zeros(n)}


def test_kayenta_judge_fails_a_clearly_worse_canary() -> None:
    rng = np.random.default_rng(1)
    baseline, canary = series(rng), series(rng, cpu=70.0)
    j = canary_mannwhitney.judge(baseline, canary)
    assert [r.name for r in j.failing()] == ["cpu"] and j.failing()[0].classification is kayenta.Classification.HIGH
    assert j.score == 80.0 and j.classification == "Marginal"  # 4 of 5 metrics pass: under 95, so the last fails
    canary["error_log_rate"] = canary["error_log_rate"] + 20
    canary["health_failures"] = np.full(60, 1.0)
    assert canary_mannwhitney.judge(baseline, canary).classification == "Fail"


def test_kayenta_judge_passes_an_identical_canary_and_an_improvement() -> None:
    rng = np.random.default_rng(2)
    baseline = series(rng)
    same = {k: v.copy() for k, v in baseline.items()}
    assert canary_mannwhitney.judge(baseline, same).score == 100.0
    better = {**same, "cpu": same["cpu"] - 20}  # CPU is judged for increases only
    assert canary_mannwhitney.judge(baseline, better).classification == "Pass"


def test_kayenta_judge_passes_a_canary_drawn_from_the_same_distribution() -> None:
    rng = np.random.default_rng(3)
    j = canary_mannwhitney.judge(series(rng), series(rng))
    assert j.classification == "Pass", [r.reason for r in j.failing()]


def test_iqr_outlier_removal_drops_a_lone_spike_and_the_gaps() -> None:
    values = np.array([10.0, 11, 9, 10, 12, 10, 11, 9, 10, 11, 10, 9, 10, 11, 10, 500, np.nan])
    assert kayenta.iqr_outliers(values[:-1]).tolist() == [False] * 15 + [True]
    kept = kayenta.transform(values)
    assert kept.size == 15 and kept.max() == 12.0


def test_mann_whitney_interval_brackets_the_hodges_lehmann_estimate() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(5.0, 1.0, 40), rng.normal(3.0, 1.0, 50)
    lower, upper, estimate = kayenta.mann_whitney_interval(x, y, 0.98)
    assert lower < estimate < upper
    assert estimate == pytest.approx(np.median(x[:, None] - y[None, :]), abs=0.05)
    assert 1.3 < lower < 2.0 < upper < 2.7


def test_canary_fails_on_a_crashing_change_and_only_the_canary_is_rolled_back() -> None:
    sc = scenario([{"mode": "crash_on_apply"}], capacity=60)
    o = STRATEGIES["canary-mannwhitney"](sc, sc.seed)
    assert o["outcome"] == "halted_in_production"
    assert o["vms"]["rolled_back"] == 3 and o["vms"]["never_touched"] == 57  # 5% of 60
    assert o["vms"]["failed_unrecovered"] == 0


def test_canary_judged_on_a_memory_leak_fails_before_the_rest_of_the_set_is_touched() -> None:
    sc = scenario([{"mode": "memory_leak", "severity": 0.3}], capacity=60)
    o = STRATEGIES["canary-mannwhitney"](sc, sc.seed)
    assert "memory_available" in reasons(o, "halt_in_production")
    assert o["vms"]["never_touched"] == 57 and o["production_vms_impaired"] == 0


# ---------------------------------------------------------------------------------------------- linear-alarm
def test_linear_alarm_rolls_every_changed_vm_back_when_the_alarm_fires() -> None:
    sc = scenario([{"mode": "health_flap", "severity": 0.8}], capacity=50)
    o = STRATEGIES["linear-alarm"](sc, sc.seed)
    assert o["outcome"] == "halted_in_production" and "health probe failing" in reasons(o, "halt_in_production")
    assert o["vms"]["rolled_back"] == 50 - o["vms"]["never_touched"] > 0
    assert o["vms"]["on_new_config"] == 0 and o["vms"]["failed_unrecovered"] == 0


def test_linear_alarm_deploys_in_five_steps_the_first_one_interval_after_the_start_as_appconfig_does() -> None:
    sc = scenario([], capacity=50)
    o = STRATEGIES["linear-alarm"](sc, sc.seed)
    plan = next(d["minute"] for d in o["decisions"] if d["kind"] == "plan")
    steps = [d["minute"] - plan for d in o["decisions"] if d["kind"] == "step"]
    assert o["outcome"] == "completed" and len(steps) == 5
    assert steps == pytest.approx([6.0, 12.0, 18.0, 24.0, 30.0], abs=1.5)
    assert 30.0 <= o["duration_minutes"] - plan < 36.0  # the bake changes nothing in production


def test_linear_alarm_at_once_keeps_the_earlier_timing_six_minutes_ahead() -> None:
    sc = scenario([], capacity=50)
    appconfig, early = STRATEGIES["linear-alarm"](sc, sc.seed), linear_alarm.run_at_once(sc, sc.seed)
    steps = [d["minute"] for d in early["decisions"] if d["kind"] == "step"]
    later = [d["minute"] for d in appconfig["decisions"] if d["kind"] == "step"]
    assert early["strategy"] == "linear-alarm-at-once" and early["outcome"] == "completed"
    assert np.subtract(later, steps) == pytest.approx([6.0] * 5, abs=1.0)
    assert appconfig["duration_minutes"] - early["duration_minutes"] == pytest.approx(6.0, abs=1.0)


def test_linear_alarm_does_not_wait_for_a_hung_apply() -> None:
    sc = scenario([{"mode": "apply_timeout", "severity": 0.6}], capacity=50)
    o = STRATEGIES["linear-alarm"](sc, sc.seed)
    halt = next(d for d in o["decisions"] if d["kind"] == "halt_in_production")
    assert halt["minute"] < 12.0 and o["vms"]["never_touched"] == 40  # halted before the second step


# ---------------------------------------------------------------------------------------------- threshold-only
def test_threshold_only_stops_over_5_percent_and_rolls_back_the_failed_vms() -> None:
    sc = scenario([{"mode": "crash_on_apply", "probability": 0.5}], capacity=100)
    o = STRATEGIES["threshold-only"](sc, sc.seed)
    assert o["outcome"] == "halted_in_production" and "> threshold 5%" in reasons(o, "halt_in_production")
    assert o["vms"]["never_touched"] >= 80  # stopped after the first batch of 10
    assert o["vms"]["rolled_back"] == o["production_vms_impaired"] > 0 and o["vms"]["failed_unrecovered"] == 0


def test_threshold_only_completes_a_good_change_in_batches_of_10_percent() -> None:
    o = STRATEGIES["threshold-only"](scenario([], capacity=40), 7)
    assert o["outcome"] == "completed" and kinds(o).count("continue") == 10


# ---------------------------------------------------------------------------------------------- no-guard, oracle
def test_no_guard_changes_everything_at_once_and_never_rolls_back() -> None:
    sc = scenario([{"mode": "crash_on_apply", "probability": 0.3}])
    o = STRATEGIES["no-guard"](sc, sc.seed)
    assert o["vms"]["never_touched"] == 0 and o["vms"]["rolled_back"] == 0 and o["snapshots_taken"] == 0
    assert o["vms"]["failed_unrecovered"] == o["production_vms_impaired"] > 0
    assert o["outcome"] == "failed" and o["duration_minutes"] < 3.0


def test_oracle_touches_exactly_the_vms_the_change_does_not_affect() -> None:
    sc = scenario([{"mode": "crash_on_apply", "probability": 0.3},
                   {"mode": "latent_crash", "when": {"zones": ["2"]}, "probability": 0.5, "onset_minutes": 60}])
    o = STRATEGIES["oracle"](sc, sc.seed)
    affected = change_truth(sc, sc.seed).vms_affected
    assert 0 < affected < 50
    assert o["vms"]["never_touched"] == affected and o["vms"]["on_new_config"] == 50 - affected
    assert o["production_vms_impaired"] == 0 and o["outcome"] == "completed_with_exclusions"


def test_affected_if_applied_agrees_with_what_apply_really_does() -> None:
    sc = scenario([{"mode": "crash_on_apply", "probability": 0.4},
                   {"mode": "error_burst", "when": {"load_above": 0.45}, "onset_minutes": 5}], capacity=200)
    w = FleetWorld(sc)
    idx = np.arange(w.n_production)
    predicted = affected_if_applied(w, idx, w.utilisation(idx, np.array([0]))[:, 0])
    w.apply(idx, ChangeSpec("c1"), timeout_minutes=15)
    really = np.isfinite(w.t["t0"][:, : w.n_production]).any(axis=0)
    assert 0 < predicted.sum() < 200 and (predicted == really).all()


def test_peers_never_read_the_truth() -> None:
    """Only the oracle (and the accounting) may touch the world's ground truth."""
    import inspect

    from shared.strategies import base, linear_alarm, no_guard, threshold_only, vmss_rolling

    for module in (base, vmss_rolling, canary_mannwhitney, kayenta, linear_alarm, threshold_only, no_guard):
        source = inspect.getsource(module)
        for truth in ('t["imp_at"]', "affected_if_applied", ".effects", 't["t0"]', 'T["', "world.t["):
            assert truth not in source, f"{module.__name__} reads {truth}"
