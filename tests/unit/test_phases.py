"""The phase breakdown of good runs, read from outcome decisions."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from shared.bench.corpus import summarise
from shared.bench.phases import phase_breakdown, phase_durations

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "bench.json.gz"


def run(duration: float, *, shadows: float = 5.0, bake_start: float = 16.0, planned: float = 48.0,
        bad: bool = False, strategy: str = "shadow-predictive") -> dict[str, Any]:
    return {"strategy": strategy, "duration_minutes": duration, "outcome": "completed",
            "bench": {"bad_change": bad, "missed": False, "family": "good", "wall_seconds": 1.0},
            "decisions": [{"minute": 0.0, "kind": "inventory", "reason": ""},
                          {"minute": shadows, "kind": "shadow_load", "reason": "56 shadows driven"},
                          {"minute": bake_start + 12.0, "kind": "analysis", "reason": "bake minute 12: 0 failing"},
                          {"minute": bake_start + 24.0, "kind": "analysis", "reason": "bake minute 24: 0 failing"},
                          {"minute": planned, "kind": "plan_waves", "reason": "4 waves"}]}


def test_a_good_run_splits_into_shadows_baseline_bake_and_waves_that_add_up_to_its_duration() -> None:
    assert phase_durations(run(92.0)) == {"shadows": 5.0, "baseline": 11.0, "bake": 32.0, "waves": 44.0}


def test_a_run_without_a_separate_baseline_counts_the_time_in_the_next_phase_found() -> None:
    r = run(60.0)
    r["decisions"] = [d for d in r["decisions"] if d["kind"] != "analysis"]
    assert phase_durations(r) == {"shadows": 5.0, "bake": 43.0, "waves": 12.0}


def test_the_breakdown_takes_median_and_p90_over_good_runs_that_reached_production() -> None:
    runs = [run(80.0 + i, planned=40.0 + i) for i in range(10)] + [run(500.0, bad=True)]
    halted = run(10.0)
    halted["decisions"] = halted["decisions"][:2]
    b = phase_breakdown([*runs, halted])
    assert b["waves"] == {"runs": 10, "median": 40.0, "p90": 40.0}
    assert b["bake"]["median"] == pytest.approx(28.5) and b["bake"]["p90"] == pytest.approx(32.1)


def test_the_bench_summary_reports_phases_for_the_strategy_that_marks_them_only() -> None:
    runs = [run(90.0), run(95.0), {**run(30.0, strategy="linear-alarm"), "decisions": []}]
    for r in runs:
        r.update({"impaired_vm_minutes": 0.0, "production_vms_impaired": 0, "fleet_cost_usd": 1.0, "scenario": "g",
                  "seed": 1, "shadow": {"cost_usd": 0.0}, "snapshots_taken": 0,
                  "vms": {"never_touched": 0, "failed_unrecovered": 0, "rolled_back": 0},
                  "capacity": {"shortfall_vm_minutes": 0.0, "extra_vm_minutes": 0.0, "max_extra_instances": 0}})
    summary = summarise(runs, ["shadow-predictive", "linear-alarm"])
    assert summary["shadow-predictive"]["phases_good"]["waves"]["runs"] == 2
    assert "phases_good" not in summary["linear-alarm"]


def test_on_the_committed_results_every_good_run_s_phases_add_up_to_its_duration() -> None:
    with gzip.open(RESULTS) as f:
        result = json.load(f)
    good = [r for r in result["runs"] if r["strategy"] == "shadow-predictive" and not r["bench"]["bad_change"]
            and any(d["kind"] == "plan_waves" for d in r["decisions"])]
    assert len(good) >= 100
    for r in good:
        phases = phase_durations(r)
        assert {"shadows", "bake", "waves"} <= set(phases)  # a separate baseline may go (issue #14)
        assert sum(phases.values()) == pytest.approx(r["duration_minutes"], abs=0.01)
