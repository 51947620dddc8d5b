"""Runs on data the model saw are told apart; the model is used only where it beats the judge on validation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.adapters.onnx_model import MODEL_DIR, OnnxFailureModel
from shared.adapters.simulator.scenario import load_scenario, parse_scenario
from shared.adapters.statistical_model import StatisticalFailureModel
from shared.bench.corpus import Corpus, fleet_wide_kinds, onset_class, plan, run_task, summarise
from shared.bench.provenance import Manifest, entries, load_manifest, scenario_digest
from shared.domain.errors import ConfigurationError
from shared.learning.dataset import Dataset
from shared.learning.selection import SECTION, select, with_selection_section

ROOT = Path(__file__).parents[2]
SCENARIOS = ROOT / "tests" / "scenarios"


def test_a_scenarios_digest_follows_its_content_not_its_formatting(tmp_path: Path) -> None:
    sc = load_scenario(SCENARIOS / "fleet-wide-crash.yaml")
    copy = tmp_path / "copy.json"
    copy.write_text(json.dumps(sc.model_dump(mode="json"), indent=4))
    assert scenario_digest(load_scenario(copy)) == scenario_digest(sc)
    edited = sc.model_copy(update={"seed": sc.seed + 1})
    assert scenario_digest(edited) != scenario_digest(sc)


def test_runs_on_pairs_the_model_saw_are_marked_in_sample_and_left_out_of_the_summary() -> None:
    path = SCENARIOS / "fleet-wide-crash.yaml"
    sc = load_scenario(path)
    manifest = Manifest({"training": frozenset({(scenario_digest(sc), sc.seed)})})
    tasks = plan(Corpus([(path, sc)]), ["no-guard"], 2, manifest=manifest)
    assert [t.in_sample for t in tasks] == ["training", None]
    runs = [run_task(t) for t in tasks]
    assert [r["bench"]["in_sample"] for r in runs] == [True, False]
    summary = summarise(runs, ["no-guard"])["no-guard"]
    assert summary["runs"] == 1 and summary["in_sample_runs_left_out"] == 1
    assert summary["impaired_vm_minutes"] == runs[1]["impaired_vm_minutes"]


def test_seed_offset_starts_elsewhere() -> None:
    path = SCENARIOS / "fleet-wide-crash.yaml"
    sc = load_scenario(path)
    tasks = plan(Corpus([(path, sc)]), ["no-guard"], 2, seed_offset=8)
    assert [t.seed for t in tasks] == [sc.seed + 8, sc.seed + 9]


def test_the_shipped_manifest_never_names_the_benchmark_corpus_or_a_held_out_family() -> None:
    """The model learns from bench/training-corpus (tests/unit/test_training_corpus.py checks that side): no
    run of bench/scenarios or bench/heldout-families is on a pair it saw."""
    manifest = load_manifest(MODEL_DIR)
    for folder in ("heldout-families", "scenarios"):
        files = sorted((ROOT / "bench" / folder).glob("*.yaml"))
        assert files
        for p in files:
            other = load_scenario(p)
            assert all(manifest.use_of(other, other.seed + k) is None for k in range(60)), p.name


def test_a_model_directory_without_a_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="manifest"):
        load_manifest(tmp_path)
    assert entries([SCENARIOS / "good-change.yaml"], [0, 1])[0]["seeds"] == [3, 4]


def test_the_held_out_families_hold_at_least_twelve_bad_changes_and_the_must_catch_kinds() -> None:
    scs = [load_scenario(p) for p in sorted((ROOT / "bench" / "heldout-families").glob("*.yaml"))]
    bad = [s for s in scs if not s.is_good_change]
    assert len(bad) >= 12 and len({s.family for s in bad}) >= 12
    assert {onset_class(s) for s in bad} == {"during_bake", "after_bake"}


def test_fleet_wide_kinds_need_no_condition_an_immediate_onset_and_enough_vms() -> None:
    def sc(effect: dict[str, Any]) -> Any:
        return parse_scenario({"name": "t", "fleet": {"scale_sets": [{"name": "web", "capacity": 200}]},
                               "change": {"id": "c", "truth": {"effects": [effect]}}})

    assert fleet_wide_kinds(sc({"mode": "crash_on_apply", "probability": 0.06}), 12) == ["crash_on_apply"]
    assert fleet_wide_kinds(sc({"mode": "crash_on_apply", "probability": 0.06}), 9) == []  # fewer than 10
    assert fleet_wide_kinds(sc({"mode": "health_flap", "when": {"zones": ["1"]}}), 60) == []
    assert fleet_wide_kinds(sc({"mode": "latent_crash"}), 200) == []


def _dataset(model: np.ndarray, judge: np.ndarray, y: np.ndarray, rollouts: int) -> Dataset:
    n = len(y)
    return Dataset(X=np.zeros((n, 1), np.float32), y=y, model_score=model, judge_score=judge,
                   oracle_score=y.astype(float), scenario=np.array([f"s{i % rollouts}" for i in range(n)]),
                   family=np.array(["f"] * n), seed=np.zeros(n), observable=np.ones(n, bool))


def test_the_model_is_chosen_only_when_its_advantage_holds_under_the_bootstrap() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.4).astype(int)
    perfect = y + rng.normal(0, 0.05, len(y))
    noisy = y + rng.normal(0, 0.8, len(y))
    better = select(_dataset(perfect, noisy, y, 40), ["a.yaml"], [1])
    assert better["model"] == "model" and better["figures"]["roc_auc"]["lower_bound"] > 0
    same = select(_dataset(noisy, noisy + rng.normal(0, 0.01, len(y)), y, 40), ["a.yaml"], [1])
    assert same["model"] == "judge" and "does not beat the judge" in same["why"]
    card = with_selection_section("# Card\n\nbody\n", same)
    assert card.count(SECTION) == 1 and '"model": "judge"' in card
    assert with_selection_section(card, better).count(SECTION) == 1


def test_the_rollout_uses_the_judge_when_the_selection_says_so(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.bootstrap import failure_model

    model_dir = tmp_path / "model"
    shutil.copytree(MODEL_DIR, model_dir)
    monkeypatch.setenv("SHADOW_ROLLOUT_MODEL_DIR", str(model_dir))
    monkeypatch.delenv("SHADOW_ROLLOUT_MODEL", raising=False)
    (model_dir / "selection.json").write_text(json.dumps({"model": "judge", "why": "test"}))
    assert isinstance(failure_model(), StatisticalFailureModel)
    (model_dir / "selection.json").write_text(json.dumps({"model": "model", "why": "test"}))
    assert isinstance(failure_model(), OnnxFailureModel)


def test_the_shipped_selection_and_the_card_say_the_same() -> None:
    selection = json.loads((MODEL_DIR / "selection.json").read_text())
    card = (MODEL_DIR / "README.md").read_text()
    assert selection["model"] in ("model", "judge")
    assert SECTION in card and selection["why"] in card
    for k, v in selection["figures"].items():
        assert f"| {k} | {v['model']:.3f} | {v['judge']:.3f} |" in card
