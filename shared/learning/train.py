"""Train, calibrate, export and document the failure model; one command, one seed, reproducible.

The model learns from the domain-randomised training corpus (``bench/training-corpus``, drawn by
``bench/make_training_corpus.py``): one dry rollout per scenario. Every fifth scenario is held out for the
card's figures, and, for a generalisation figure, whole failure modes are held out in turn (a fold's model never
saw a change with those modes). Features are float32 before training so that the ONNX model's split thresholds
agree with scikit-learn's.

The estimator is a random forest with monotonic constraints (``RandomForestClassifier(monotonic_cst=...)``,
scikit-learn >= 1.4): where the direction is known (more shadows failing their apply, a larger change for the
worse, a more significant one, a higher judge score, here or in a sibling stratum), the predicted risk never
falls as the evidence grows, so the model cannot learn a corpus artefact that says the opposite. Gradient
boosting would be the first choice, but ``GradientBoostingClassifier`` takes no monotonic constraints and
skl2onnx 1.20 cannot convert a ``HistGradientBoostingClassifier`` (its tree converter passes a Python bool into
an ONNX ``ints`` attribute, which onnx 1.23 refuses), so the forest is what both constrains and exports.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..adapters.onnx_model import FEATURES_FILE, MODEL_DIR, MODEL_FILE, SELECTION_FILE
from ..bench.provenance import entries, write_manifest
from ..domain.features import FEATURE_VERSION, FEATURES
from .dataset import Dataset, collect, scenario_files
from .metrics import report

TRAINING_CORPUS = Path("bench/training-corpus")
SEED_OFFSETS = (0,)
"""One rollout per scenario: a new draw teaches more than a new seed of the same draw."""
HELD_OUT_EVERY = 5
"""Every fifth scenario of the corpus is held out: the card's figures on scenarios never trained on."""
MODE_FOLDS = 4
PARITY_TOLERANCE = 1e-4
INCREASING = ("own_apply_fail", "own_apply_timeout", "own_judge_score", "own_worst_effect", "own_worst_logp",
              "sku_max_score", "image_max_score", "set_max_score", "fleet_fail_share", "fleet_worst_effect",
              "fleet_worst_logp")
"""Features whose growth can only mean more risk: evidence of failure never makes a VM safer."""
PACKAGED_ROWS_FILE = "training-rows.npz"


def monotonic_cst() -> list[int]:
    """+1 for the features in :data:`INCREASING`, 0 (no constraint) for the others, in ``FEATURES`` order."""
    return [1 if f in INCREASING else 0 for f in FEATURES]


@dataclass(frozen=True)
class TrainingConfig:
    scenarios: Path = TRAINING_CORPUS
    out: Path = MODEL_DIR
    seed: int = 0
    max_vms: int = 2000
    n_estimators: int = 150
    max_leaf_nodes: int = 64
    limit: int | None = None
    """Only the first N scenarios (a quick run; the test's tiny size)."""


def make_estimator(cfg: TrainingConfig, *, calibrated: bool = True) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=cfg.n_estimators, max_leaf_nodes=cfg.max_leaf_nodes,
                                    min_samples_leaf=20, monotonic_cst=monotonic_cst(), random_state=cfg.seed)
    # sigmoid, not isotonic: a step function would turn float32 differences at its steps into big jumps (and
    # sigmoid keeps the forest's order, so the constraints hold after calibration)
    # ensemble=False: one forest (calibrated on cross-validated predictions), a third of the inference cost
    return CalibratedClassifierCV(forest, method="sigmoid", cv=3, ensemble=False) if calibrated else forest


def describe(cfg: TrainingConfig) -> str:
    return (f"CalibratedClassifierCV(sigmoid, cv=3, ensemble=False) of RandomForestClassifier(n_estimators="
            f"{cfg.n_estimators}, max_leaf_nodes={cfg.max_leaf_nodes}, min_samples_leaf=20, monotonic_cst: "
            f"increasing in {len(INCREASING)} features)")


def complete(d: Dataset) -> np.ndarray:
    rows: np.ndarray = np.isfinite(d.X).all(axis=1)
    return rows


def _proba_of(estimator: Any) -> Callable[[np.ndarray], np.ndarray]:
    def proba(x: np.ndarray) -> np.ndarray:
        return np.asarray(estimator.predict_proba(x))[:, 1]

    return proba


def predict_with_fallback(model_proba: Callable[[np.ndarray], np.ndarray], d: Dataset) -> np.ndarray:
    """As at run time: the model scores complete rows, the judge the rest."""
    out = d.judge_score.astype(float).copy()
    ok = complete(d)
    if ok.any():
        out[ok] = model_proba(d.X[ok])
    return out


def split_report(d: Dataset, scores: np.ndarray) -> dict[str, Any]:
    parts = {"all": np.ones(len(d), bool), "observable": d.observable.astype(bool),
             "unobservable": ~d.observable.astype(bool)}
    return {name: report(d.y[m], scores[m], d.judge_score[m], d.oracle_score[m]) for name, m in parts.items()
            if m.any() and len(set(d.y[m].tolist())) > 1}


def export_onnx(estimator: Any, path: Path) -> Any:
    from skl2onnx import to_onnx

    onx = to_onnx(estimator, np.zeros((1, len(FEATURES)), dtype=np.float32),
                  options={id(estimator): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    path.write_bytes(onx.SerializeToString())
    return onx


def fit_rows(d: Dataset) -> np.ndarray:
    """Learn only from rollouts whose effects the shadows could show: a label that no feature can explain
    (a crash hours after the bake) would teach the model the corpus's fleet shapes instead of evidence."""
    rows: np.ndarray = complete(d) & d.observable.astype(bool)
    return rows


def split_corpus(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """Training scenarios and held-out ones (every :data:`HELD_OUT_EVERY`-th, in file order)."""
    held = [p for i, p in enumerate(paths) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    return [p for p in paths if p not in held], held


def train(cfg: TrainingConfig, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    from ..adapters.simulator.scenario import load_scenario
    from .trainer import PackagedRows, save_rows

    started = time.perf_counter()
    paths = scenario_files(cfg.scenarios, cfg.max_vms)[:cfg.limit]
    fit_paths, held_paths = split_corpus(paths)
    progress(f"collecting dry rollouts: {len(fit_paths)} training and {len(held_paths)} held-out scenarios")
    train_d = collect(fit_paths, SEED_OFFSETS)
    test_d = collect(held_paths, SEED_OFFSETS)
    rows = fit_rows(train_d)
    if len(set(train_d.y[rows].tolist())) < 2:
        raise ValueError(f"the {int(rows.sum())} training rows of {cfg.scenarios} show one outcome only")
    progress(f"training on {int(rows.sum())} rows ({int(train_d.y[rows].sum())} positives)")
    estimator = make_estimator(cfg).fit(train_d.X[rows], train_d.y[rows])
    held_out = split_report(test_d, predict_with_fallback(_proba_of(estimator), test_d))
    progress("holding out whole failure modes")
    modes = {(sc := load_scenario(p)).name: {e.mode.value for e in sc.change.truth.effects} for p in paths}
    by_mode = _mode_holdout(cfg, train_d, test_d, modes)
    cfg.out.mkdir(parents=True, exist_ok=True)
    export_onnx(estimator, cfg.out / MODEL_FILE)
    parity, throughput = _check_onnx(cfg.out / MODEL_FILE, estimator, test_d)
    if parity > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX parity {parity:.2e} > {PARITY_TOLERANCE:g}: the exported model disagrees")
    meta = {"version": FEATURE_VERSION, "features": list(FEATURES), "trained_at": datetime.now(UTC).isoformat(),
            "seed": cfg.seed, "estimator": describe(cfg),
            "monotonic_increasing": list(INCREASING), "corpus": str(cfg.scenarios),
            "scenarios": [p.name for p in fit_paths], "held_out_scenarios": [p.name for p in held_paths],
            "seed_offsets": list(SEED_OFFSETS)}
    (cfg.out / FEATURES_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    write_manifest(cfg.out, {"training": entries(fit_paths, SEED_OFFSETS),
                             "training_held_out": entries(held_paths, SEED_OFFSETS)})
    packaged = PackagedRows(train_d.X[rows].astype(np.float32), train_d.y[rows].astype(np.int8),
                            train_d.judge_score[rows].astype(np.float64), _hashes(fit_paths))
    save_rows(packaged, cfg.out / PACKAGED_ROWS_FILE)
    # a new model is not validated yet: until select-model says otherwise, the rollout keeps the judge
    (cfg.out / SELECTION_FILE).write_text(json.dumps({
        "model": "judge", "why": "the model is not validated yet: run shadow-rollout select-model",
        "figures": {}}, indent=1) + "\n")
    metrics = {
        "held_out_scenarios": held_out, "held_out_modes": by_mode,
        "onnx_parity_max_abs_diff": parity, "inference_rows_per_second": throughput,
        "onnx_bytes": (cfg.out / MODEL_FILE).stat().st_size,
        "training_scenarios": len(fit_paths), "held_out_scenario_count": len(held_paths),
        "training_rows": int(rows.sum()), "training_positives": int(train_d.y[rows].sum()),
        "rows_left_to_the_judge_in_training": int((~complete(train_d)).sum()),
        "unobservable_rows_not_trained_on": int((complete(train_d) & ~train_d.observable.astype(bool)).sum()),
        "packaged_rows_bytes": (cfg.out / PACKAGED_ROWS_FILE).stat().st_size,
        "wall_seconds": round(time.perf_counter() - started, 1), "machine": platform.machine(),
    }
    (cfg.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (cfg.out / "README.md").write_text(model_card(meta, metrics))
    return metrics


def _hashes(paths: Sequence[Path]) -> dict[str, str]:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _mode_holdout(cfg: TrainingConfig, train_d: Dataset, test_d: Dataset, modes: dict[str, set[str]]
                  ) -> dict[str, Any]:
    """Train without some failure modes, score the held-out scenarios with them: generalisation to changes of a
    new kind. Good changes are scored by the fold their position falls in."""
    all_modes = sorted(set().union(*modes.values())) if modes else []
    folds = [all_modes[i::MODE_FOLDS] for i in range(MODE_FOLDS)]
    scores = test_d.judge_score.astype(float).copy()
    scored = np.zeros(len(test_d), bool)
    goods = sorted({s for s in test_d.scenario.tolist() if not modes.get(s)})
    for k, fold in enumerate(folds):
        if not fold:
            continue
        held = set(fold)
        fit = fit_rows(train_d) & np.array([not (modes.get(s, set()) & held) for s in train_d.scenario], bool)
        if len(set(train_d.y[fit].tolist())) < 2:
            continue
        est = make_estimator(cfg, calibrated=False).fit(train_d.X[fit], train_d.y[fit])
        mask = ~scored & np.array([bool(modes.get(s, set()) & held) or
                                   (not modes.get(s) and goods.index(s) % MODE_FOLDS == k)
                                   for s in test_d.scenario], bool)
        scores[mask] = predict_with_fallback(_proba_of(est), test_d.subset(mask))
        scored |= mask
    out = split_report(test_d.subset(scored), scores[scored])
    out["folds"] = folds
    return out


def _check_onnx(path: Path, estimator: Any, d: Dataset) -> tuple[float, float]:
    from ..adapters.onnx_model import _session

    _session.cache_clear()
    sess = _session(str(path))
    name = sess.get_inputs()[0].name
    x = d.X[complete(d)]
    parity = 0.0  # onnxruntime refuses an empty batch: a corpus without complete rows has no parity to check
    if len(x):
        onnx_p = np.asarray(sess.run(None, {name: x})[1])[:, 1]
        parity = float(np.max(np.abs(onnx_p - np.asarray(estimator.predict_proba(x))[:, 1])))
    big = np.ascontiguousarray(np.resize(x, (200_000, x.shape[1])) if len(x) else np.zeros((1, len(FEATURES)),
                                                                                          np.float32))
    sess.run(None, {name: big[:1000]})
    t = time.perf_counter()
    sess.run(None, {name: big})
    return round(parity, 9), round(len(big) / (time.perf_counter() - t))


TABLE_HEAD = ("| rows | examples | positives | ROC-AUC | truth ROC-AUC | judge ROC-AUC | PR-AUC | judge PR-AUC | "
              "recall@P95 | judge recall@P95 | truth recall@P95 | Brier | judge Brier | truth Brier |\n"
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def table_row(name: str, r: dict[str, Any]) -> str:
    def g(k: str) -> str:
        v = r.get(k)
        return "n/a" if v is None else f"{v:.3f}"

    return (f"| {name} | {r['examples']} | {r['positives']} | {g('roc_auc')} | {g('oracle_roc_auc')} | "
            f"{g('judge_roc_auc')} | {g('pr_auc')} | {g('judge_pr_auc')} | {g('recall_at_precision_95')} | "
            f"{g('judge_recall_at_precision_95')} | {g('oracle_recall_at_precision_95')} | {g('brier')} | "
            f"{g('judge_brier')} | {g('oracle_brier')} |")


REPRODUCE = """python bench/make_training_corpus.py
shadow-rollout train
shadow-rollout select-model --seeds 4
shadow-rollout accept-model"""
"""The model card's reproduction commands (run, at a tiny size, by tests/unit/test_training_corpus.py)."""


def model_card(meta: dict[str, Any], m: dict[str, Any]) -> str:
    held = "\n".join(table_row(k, v) for k, v in m["held_out_scenarios"].items())
    modes = "\n".join(table_row(k, v) for k, v in m["held_out_modes"].items() if k != "folds")
    return f"""# Failure model card

Generated by `shadow-rollout train` on {meta['trained_at'][:10]}; do not edit by hand.

## What it predicts
For every production VM of a rollout, the probability that the change would impair it, from what the
shadows showed before production was touched. The rollout skips VMs at or above `skip_probability`,
snapshots and queues rollbacks for VMs at or above `snapshot_probability`, halts before production when
confident failures (`confident_failure`) cover `halt_fleet_share` of the fleet, and gives the production
surprise test the rate it expects for the VMs that proceed (capped at `tolerable_failure_rate`). The
shadows' own failure counts decide as well, through a bound on the failure rate (`shared/domain/bounds.py`),
whatever the model says. The rollout uses the model only when it beats the judge on validation families
(see "In use" below).

## Reproduce
About {m['wall_seconds'] / 60:.0f} minutes on this machine (2 shared cores; {m['training_scenarios'] +
m['held_out_scenario_count']} dry rollouts, then {1 + MODE_FOLDS + 3} forest fits):

```
{REPRODUCE}
```

The corpus is sized to keep the run within about 15 minutes on this machine's 2 shared cores (the dry rollouts
take most of it, and grow linearly with the number of draws; `--limit N` trains on the first N draws only).

## Data
A domain-randomised corpus (`{meta['corpus']}`, drawn by `bench/make_training_corpus.py` with its own
generator seed): every scenario draws its fleet (1 to 6 scale sets, Flexible or Uniform, SKUs, images, zones,
load, noise) and its change (good, or one or two effects of any mode with a random magnitude, share of VMs,
onset and condition). Its SKUs, images, names and seeds are disjoint from the validation and held-out
families', so no family leaks. {m['training_scenarios']} scenarios are trained on and
{m['held_out_scenario_count']} (every {HELD_OUT_EVERY}th) held out for the figures below, one rollout each
(seed `file seed + {meta['seed_offsets']}`).
One row per production VM; the label is the simulator's truth: would the change have affected this VM had
it reached it when the decision was made. {m['training_rows']} training rows ({m['training_positives']}
positives) from observable rollouts only: {m['unobservable_rows_not_trained_on']} rows of rollouts whose
effects start after the bake are not trained on, because no feature can explain their labels;
{m['rows_left_to_the_judge_in_training']} rows with a missing feature are left to the judge, as they are at
run time. The training rows are packaged as `model/{PACKAGED_ROWS_FILE}` ({m['packaged_rows_bytes']:,}
bytes) for the trainer, which adds a fleet's own recorded rollouts to them.

## Features (version {meta['version']})
{', '.join(f'`{f}`' for f in meta['features'])}.
Each names evidence: own-stratum evidence (shadows observed, apply failures and timeouts, apply time, the
largest change for the worse after the untouched twins and its significance, memory slope, the judge's
score), the strongest judge score of sibling strata sharing the VM's SKU, image or scale set, the pooled
evidence of all shadows, and the VM's own traits (vCPUs, memory, orchestration mode). The judge's evidence
is an input, not a rival. No feature names a SKU, an image or a scale set, so the model applies to fleets it
has not seen.

## Training
{meta['estimator']}, random state {meta['seed']}, float32 features, exported with skl2onnx and run by
onnxruntime ({m['onnx_bytes']:,} bytes). Monotonic constraints (the risk never falls as this evidence grows):
{', '.join(f'`{f}`' for f in meta['monotonic_increasing'])}. A random forest, not gradient boosting:
`GradientBoostingClassifier` takes no monotonic constraints and skl2onnx 1.20 cannot convert a
`HistGradientBoostingClassifier` (see `shared/learning/train.py`). ONNX against scikit-learn: max abs
difference {m['onnx_parity_max_abs_diff']:.2e}. Inference: {m['inference_rows_per_second']:,} VM
predictions per second in one batch on this machine.

## Figures on held-out corpus scenarios
Observable: every effect's onset falls inside the bake (the shadows can see it); unobservable: some effect
starts later, so only production can show it (reported apart, as no shadow-based model can score it).

{TABLE_HEAD}
{held}

## Figures with whole failure modes held out
Modes held out in {MODE_FOLDS} folds ({'; '.join(', '.join(f) for f in m['held_out_modes']['folds'])}):
each fold's model never saw a change with those modes (uncalibrated forest, same features and constraints).

{TABLE_HEAD}
{modes}

## Limits
* Labels come from the simulator; in Azure, retraining labels rows by what production showed
  (`shadow-rollout retrain`), which sees only the VMs that were changed.
* A change whose effect starts after the bake, or only at a load the shadows never ran at, shows nothing
  before production: the model cannot score it better than the base rate; the production waves, the error
  threshold and the watch are the guard there.
* A VM with a missing feature (no observed shadow of its stratum, an unknown SKU, no recent telemetry) is
  scored by the statistical judge, and the decision says so.
"""
