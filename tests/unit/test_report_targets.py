"""The report's targets compare like with like: extra seeds one side ran do not count against the other."""

from __future__ import annotations

from typing import Any

from shared.bench.report import evaluate_targets


def _run(strategy: str, seed: int, shortfall: float, *, good: bool = True) -> dict[str, Any]:
    return {"strategy": strategy, "scenario": "hot", "seed": seed, "outcome": "completed",
            "capacity": {"shortfall_vm_minutes": shortfall, "extra_vm_minutes": 0.0, "max_extra_instances": 0},
            "vms": {"never_touched": 0}, "decisions": [],
            "bench": {"bad_change": not good, "missed": False, "fleet_wide": False, "in_sample": False}}


def _summary(runs: list[dict[str, Any]], strategy: str) -> dict[str, Any]:
    mine = [r for r in runs if r["strategy"] == strategy]
    return {"runs": len(mine), "good_runs": len(mine), "bad_runs": 0, "false_halts": 0, "missed_bad_changes": 0,
            "vms_excluded_on_good": 0, "median_duration_minutes_good": None, "shadow_cost_ratio": 0.0,
            "shadow_cost_usd": 0.0, "fleet_cost_usd": 1.0, "extra_vm_minutes": 0.0,
            "capacity_shortfall_vm_minutes": sum(r["capacity"]["shortfall_vm_minutes"] for r in mine)}


def _capacity_target(runs: list[dict[str, Any]]) -> dict[str, Any]:
    result = {"runs": runs, "summary": {s: _summary(runs, s) for s in ("shadow-predictive", "vmss-rolling")}}
    return next(t for t in evaluate_targets(result) if t["target"].startswith("capacity shortfall"))


def test_capacity_shortfall_counts_only_the_seeds_both_strategies_ran() -> None:
    # 40 good seeds for the project, one for the peer: the project's 39 extra seeds are not compared
    runs = [_run("shadow-predictive", s, 5.0) for s in range(40)] + [_run("vmss-rolling", 0, 100.0)]
    t = _capacity_target(runs)
    assert t["met"] is True
    assert "5 vs 100 VM-min over the 1 runs both made" in t["measured"]


def test_capacity_shortfall_above_a_tenth_of_the_peers_on_the_same_runs_is_not_met() -> None:
    runs = [_run("shadow-predictive", 0, 11.0), _run("vmss-rolling", 0, 100.0)]
    t = _capacity_target(runs)
    assert t["met"] is False and "ratio 0.11" in t["measured"]
    assert t["why"] == ["hot: 11 shortfall VM-min (vs vmss-rolling 100)"]
