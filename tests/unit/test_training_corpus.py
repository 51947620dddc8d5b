"""The model learns from a domain-randomised corpus that no validation or held-out family leaks into, under
monotonic constraints; the card's figures are the results files' own and its reproduction commands run."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from shared.adapters.onnx_model import MODEL_DIR, OnnxFailureModel
from shared.adapters.simulator.scenario import load_scenario
from shared.bench.provenance import load_manifest, scenario_digest
from shared.domain.features import FEATURES
from shared.learning.selection import SECTION
from shared.learning.train import INCREASING, REPRODUCE, TABLE_HEAD, split_corpus, table_row
from shared.learning.trainer import PACKAGED_ROWS_FILE, VALIDATION_ROWS_FILE, load_rows
from tests.e2e.test_cli import exe

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
CORPUS = BENCH / "training-corpus"
sys.path.insert(0, str(BENCH))
import make_training_corpus  # noqa: E402 - the committed generator, beside the corpus it writes


def test_the_committed_corpus_is_what_its_generator_draws(tmp_path: Path) -> None:
    make_training_corpus.main(["--out", str(tmp_path)])
    drawn = {p.name: p.read_text() for p in tmp_path.glob("*.yaml")}
    committed = {p.name: p.read_text() for p in CORPUS.glob("*.yaml")}
    assert len(committed) == make_training_corpus.SCENARIOS and drawn == committed


def _traits(folder: Path) -> tuple[set[str], set[str], set[str], set[str]]:
    scs = [load_scenario(p) for p in sorted(folder.glob("*.yaml"))]
    return ({scenario_digest(s) for s in scs}, {k for s in scs for ss in s.fleet.scale_sets for k in ss.skus},
            {k for s in scs for ss in s.fleet.scale_sets for k in ss.images}, {s.family or s.name for s in scs})


def test_no_validation_or_held_out_family_leaks_into_the_training_corpus() -> None:
    digests, skus, images, families = _traits(CORPUS)
    modes = {e.mode.value for p in CORPUS.glob("*.yaml") for e in load_scenario(p).change.truth.effects}
    assert len(modes) == 8  # every mode is drawn
    for folder in ("validation-families", "heldout-families"):
        d, s, i, f = _traits(BENCH / folder)
        assert not digests & d and not skus & s and not images & i and not families & f, folder


def test_the_manifest_names_the_training_corpus_and_validation_families_and_never_a_held_out_one() -> None:
    manifest = load_manifest(MODEL_DIR)
    train, held = split_corpus(sorted(CORPUS.glob("*.yaml")))
    first, kept = load_scenario(train[0]), load_scenario(held[0])
    assert manifest.use_of(first, first.seed) == "training"
    assert manifest.use_of(kept, kept.seed) == "training_held_out"
    selection = json.loads((MODEL_DIR / "selection.json").read_text())
    for p in sorted((BENCH / "validation-families").glob("*.yaml")):
        sc = load_scenario(p)
        assert manifest.use_of(sc, sc.seed) == "selection", p.name
        assert sc.seed in selection["seeds"]
    for p in sorted((BENCH / "heldout-families").glob("*.yaml")):
        sc = load_scenario(p)
        assert all(manifest.use_of(sc, sc.seed + k) is None for k in range(60)), p.name


def test_the_model_never_scores_lower_for_stronger_evidence_of_failure() -> None:
    """The monotonic constraints survive calibration and the ONNX export: raising any of the INCREASING
    features of real rows never lowers the shipped model's risk."""
    rows = load_rows(MODEL_DIR / VALIDATION_ROWS_FILE).X[:400]
    model = OnnxFailureModel(MODEL_DIR)
    base = model.probabilities(rows)
    for name in INCREASING:
        j = FEATURES.index(name)
        for step in (0.05, 0.5, 5.0):
            more = rows.copy()
            more[:, j] += step
            assert (model.probabilities(more) >= base - 1e-6).all(), (name, step)


def test_the_packaged_rows_are_small_and_what_the_manifest_and_metrics_count() -> None:
    metrics = json.loads((MODEL_DIR / "metrics.json").read_text())
    training = load_rows(MODEL_DIR / PACKAGED_ROWS_FILE)
    validation = load_rows(MODEL_DIR / VALIDATION_ROWS_FILE)
    assert len(training.y) == metrics["training_rows"] and int(training.y.sum()) == metrics["training_positives"]
    assert set(validation.scenario_hashes) == {p.name for p in (BENCH / "validation-families").glob("*.yaml")}
    assert len(validation.y) > 0 and 0 < validation.y.mean() < 1
    for name in (PACKAGED_ROWS_FILE, VALIDATION_ROWS_FILE):
        assert (MODEL_DIR / name).stat().st_size < 5_000_000, name


def test_the_card_shows_the_metrics_and_the_selection_files_figures() -> None:
    card = (MODEL_DIR / "README.md").read_text()
    metrics = json.loads((MODEL_DIR / "metrics.json").read_text())
    assert card.count(TABLE_HEAD) == 2
    for part in ("held_out_scenarios", "held_out_modes"):
        for name, r in metrics[part].items():
            if name != "folds":
                assert table_row(name, r) in card, (part, name)
    selection = json.loads((MODEL_DIR / "selection.json").read_text())
    assert SECTION in card and selection["why"] in card and selection["figures"]
    which = "learned model" if selection["model"] == "model" else "statistical judge"
    assert f"**The rollout uses the {which}**" in card
    for k, v in selection["figures"].items():
        assert f"| {k} | {v['model']:.3f} | {v['judge']:.3f} | {v['difference']:+.3f} | {v['lower_bound']:+.3f} |" \
            in card


TINY = {"make_training_corpus.py": ["--scenarios", "6"], "train": ["--n-estimators", "8"],
        "select-model": ["--seeds", "1"], "accept-model": []}


def test_the_cards_reproduction_commands_run_at_a_tiny_size(tmp_path: Path) -> None:
    """Each line of the card's "Reproduce" block, as written, with a tiny size and a scratch folder appended."""
    card = (MODEL_DIR / "README.md").read_text()
    assert f"```\n{REPRODUCE}\n```" in card
    corpus, model = tmp_path / "corpus", tmp_path / "model"
    validation = tmp_path / "validation"
    validation.mkdir()
    for name in ("vx-crash-quarter.yaml", "vx-good-two-flex.yaml"):
        (validation / name).write_text((BENCH / "validation-families" / name).read_text())
    held_out = tmp_path / "held-out"
    held_out.mkdir()
    (held_out / "hx-good-small-0.yaml").write_text((BENCH / "heldout-families" / "hx-good-small-0.yaml").read_text())
    (held_out / "hx-flap-zone.yaml").write_text((BENCH / "heldout-families" / "hx-flap-zone.yaml").read_text())
    where = {"make_training_corpus.py": ["--out", str(corpus)],
             "train": ["--scenarios", str(corpus), "--out", str(model)],
             "select-model": ["--scenarios", str(validation), "--model-dir", str(model)],
             "accept-model": ["--scenarios", str(held_out), "--model-dir", str(model)]}
    for line in REPRODUCE.splitlines():
        args = shlex.split(line)
        key = next(k for k in TINY if k in (args[0].rsplit("/", 1)[-1], args[1].rsplit("/", 1)[-1]))
        cmd = [sys.executable, *args[1:]] if args[0] == "python" else [exe(), *args[1:]]
        p = subprocess.run([*cmd, *TINY[key], *where[key]], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, (line, p.stderr[-2000:])
    selection = json.loads((model / "selection.json").read_text())
    assert selection["rollouts"] == 2 and selection["model"] in ("model", "judge")
    assert (selection["model"] == "model") == (selection["validation_choice"] == "model"
                                               and selection["acceptance"]["passed"])
    assert len(load_rows(model / PACKAGED_ROWS_FILE).y) == json.loads((model / "metrics.json").read_text())[
        "training_rows"]
    assert set(json.loads((model / "manifest.json").read_text())["uses"]) == {"training", "training_held_out",
                                                                                "selection"}
    assert load_rows(model / VALIDATION_ROWS_FILE).scenario_hashes.keys() == {"vx-crash-quarter.yaml",
                                                                               "vx-good-two-flex.yaml"}
    assert re.search(r"## Reproduce\n", (model / "README.md").read_text())
