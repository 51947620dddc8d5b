"""The ``bench`` command end to end on a few small scenarios, and the report it draws."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import pytest

from shared.bench.corpus import bench, parse_strategies, plan
from shared.bench.report import evaluate_targets, write_report
from shared.domain.errors import InvalidInput
from shared.strategies import STRATEGIES

from .test_cli import OUTCOME_KEYS, VMS_KEYS, cli

SCENARIOS = Path(__file__).parents[1] / "scenarios"
SUMMARY_KEYS = {"runs", "impaired_vm_minutes", "production_vms_impaired", "false_halts", "vms_excluded_on_good",
                "missed_bad_changes", "median_duration_minutes_good", "shadow_cost_ratio",
                "capacity_shortfall_vm_minutes", "extra_vm_minutes", "wall_seconds"}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    d = tmp_path / "corpus"
    d.mkdir()
    for name in ("good-change", "fleet-wide-crash", "latent-crash"):
        shutil.copy(SCENARIOS / f"{name}.yaml", d)
    return d


def test_bench_json_holds_every_run_and_the_contract_summary_per_strategy(corpus: Path) -> None:
    p = cli("bench", "--scenarios", str(corpus), "--strategies", "all", "--seeds", "1", "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)  # nothing but one JSON object on stdout; the progress bar is on stderr
    assert "bench" in p.stderr
    runs = result["runs"]
    assert len(runs) == 3 * len(STRATEGIES)
    for o in runs:
        assert set(o) >= OUTCOME_KEYS and set(o["vms"]) == VMS_KEYS
        assert sum(o["vms"].values()) == 2 * o["vms"]["total"]
    assert set(result["summary"]) == set(STRATEGIES)
    for s in result["summary"].values():
        assert set(s) >= SUMMARY_KEYS and s["runs"] == 3
    assert result["summary"]["oracle"]["impaired_vm_minutes"] == 0
    assert result["summary"]["no-guard"]["missed_bad_changes"] == 2
    assert result["summary"]["shadow-predictive"]["shadow_cost_ratio"] > 0
    assert {r["scenario"]: r["bench"]["bad_change"] for r in runs} == {
        "good-change": False, "fleet-wide-crash": True, "latent-crash": True}


def test_bench_chaos_runs_each_shadow_predictive_run_disturbed_and_compares_it(corpus: Path) -> None:
    p = cli("bench", "--scenarios", str(corpus), "--strategies", "shadow-predictive,no-guard", "--seeds", "1",
            "--chaos", "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    chaos = result["summary"]["shadow-predictive"]["chaos"]
    assert {"runs", "redelivered", "crashes", "unknown_state_runs", "leak_runs", "differing_runs"} <= set(chaos)
    assert chaos["runs"] == 3 and chaos["redelivered"] + chaos["crashes"] > 0
    assert chaos["unknown_state_runs"] == 0 and chaos["leak_runs"] == 0
    runs = [r for r in result["runs"] if r["strategy"] == "shadow-predictive"]
    assert sum(1 for r in runs if r["chaos"]["differs"]) == chaos["differing_runs"]
    assert "chaos" not in result["summary"]["no-guard"]  # the peers do not run on Durable Functions
    assert result["meta"]["chaos_rate"] == 0.3


def test_seeds_run_from_the_scenario_seed_and_good_changes_may_get_more(corpus: Path) -> None:
    result = bench(corpus, ["no-guard", "oracle"], 2, good_seeds=3, workers=1)
    seeds = {(r["scenario"], r["strategy"]): [] for r in result["runs"]}
    for r in result["runs"]:
        seeds[(r["scenario"], r["strategy"])].append(r["seed"])
    assert seeds[("good-change", "oracle")] == [3, 4, 5]  # good-change.yaml has seed 3
    assert seeds[("latent-crash", "no-guard")] == [11, 12]
    assert result["summary"]["oracle"]["good_runs"] == 3


def test_unknown_strategies_and_tiny_fleets_filter_are_refused_with_the_names(corpus: Path) -> None:
    with pytest.raises(InvalidInput, match=r"unknown strategy 'kayenta'.*canary-mannwhitney"):
        parse_strategies("no-guard,kayenta")
    with pytest.raises(InvalidInput, match="no scenario to run"):
        bench(corpus, ["no-guard"], 1, max_vms=10)


def test_scale_scenarios_are_left_to_bench_scale() -> None:
    from shared.bench.corpus import load_corpus

    c = load_corpus(Path(__file__).parents[2] / "bench" / "scenarios")
    assert len(c.scenarios) == 50 and {s["scenario"] for s in c.skipped} == {
        "scale-5k-good", "scale-10k-rare", "scale-20k-latent", "scale-50k-good"}
    assert len(plan(c, ["oracle"], 5, good_seeds=17)) == 38 * 5 + 12 * 17


def test_report_renders_every_plot_and_states_each_target(corpus: Path, tmp_path: Path) -> None:
    from shared.bench.report import timeline_of

    result = bench(corpus, list(STRATEGIES), 1, workers=2)
    result["targets"] = evaluate_targets(result)
    result["timeline"] = timeline_of(corpus, "latent-crash")
    w0, w1 = result["timeline"]["watch"]  # the production watch, drawn as a band on the production panels
    assert 0 < w0 < w1 and w1 - w0 == pytest.approx(1440, abs=0.2)  # latent-crash keeps the 24-hour default
    files = write_report(result, tmp_path / "report")
    names = {f.name for f in files}
    assert names == {"impaired.png", "false_halts.png", "duration_good.png", "shadow_cost.png", "capacity.png",
                     "timeline.png", "index.html"}
    assert all(f.stat().st_size > 1000 for f in files)
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    for t in result["targets"]:
        assert html.escape(t["target"]) in page and html.escape(t["measured"]) in page
    assert {t["target"].split(" ")[0] for t in result["targets"]} >= {"impaired", "false", "no", "median",
                                                                       "capacity", "shadow_cost_ratio"}


def test_bench_report_redraws_the_report_from_a_saved_result(corpus: Path, tmp_path: Path) -> None:
    saved = tmp_path / "results" / "bench.json.gz"
    p = cli("bench", "--scenarios", str(corpus), "--strategies", "no-guard,oracle", "--seeds", "1", "--out", str(saved))
    assert p.returncode == 0, p.stderr
    assert json.loads((saved.parent / "summary.json").read_text())["summary"]["oracle"]["runs"] == 3
    readme = tmp_path / "README.md"
    readme.write_text("# Results\n\n<!-- results:begin -->\nold\n<!-- results:end -->\n\nafter\n")
    p = cli("bench-report", str(saved), "--report", str(tmp_path / "report"), "--scenarios", str(corpus),
            "--timeline", "latent-crash", "--readme", str(readme))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "report" / "index.html").is_file() and (tmp_path / "report" / "timeline.png").is_file()
    text = readme.read_text()
    assert "old" not in text and "| `oracle` |" in text and text.endswith("<!-- results:end -->\n\nafter\n")


def test_scale_benchmark_times_the_batch_inference_of_the_model_in_use() -> None:
    from shared.bench.scale import run_one
    from shared.bootstrap import failure_model

    r = run_one(200)
    assert r["vms"] == 200 and r["inference_model"] == failure_model().name  # the judge, per model/selection.json
    assert r["inference_vms_per_second"] > 0 and r["max_history_events"] > 0
