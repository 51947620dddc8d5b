"""Train, calibrate, export and document the failure model; one command, one seed, reproducible.

Rollouts of the scenario corpus are split by seed (test rollouts never seen in training) and, for a
generalisation figure, by scenario family (whole families held out). Features are float32 before training
so that the ONNX model's split thresholds agree with scikit-learn's.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..adapters.onnx_model import FEATURES_FILE, MODEL_DIR, MODEL_FILE
from ..bench.provenance import entries, write_manifest
from ..domain.features import FEATURE_VERSION, FEATURES
from .dataset import Dataset, collect, scenario_files
from .metrics import report

TRAIN_SEED_OFFSETS = tuple(range(0, 6))
TEST_SEED_OFFSETS = (6, 7)
FAMILY_FOLDS = 4
PARITY_TOLERANCE = 1e-4


@dataclass(frozen=True)
class TrainingConfig:
    scenarios: Path
    out: Path = MODEL_DIR
    seed: int = 0
    max_vms: int = 2000
    n_estimators: int = 200
    max_depth: int = 3


def make_estimator(cfg: TrainingConfig, *, calibrated: bool = True) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import GradientBoostingClassifier

    gbm = GradientBoostingClassifier(n_estimators=cfg.n_estimators, max_depth=cfg.max_depth, learning_rate=0.1,
                                     subsample=0.8, random_state=cfg.seed)
    # sigmoid, not isotonic: a step function would turn float32 differences at its steps into big jumps
    # ensemble=False: one boosted model (calibrated on cross-validated predictions), a third of the inference cost
    return CalibratedClassifierCV(gbm, method="sigmoid", cv=3, ensemble=False) if calibrated else gbm


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
            if m.any()}


def export_onnx(estimator: Any, path: Path) -> Any:
    from skl2onnx import to_onnx

    onx = to_onnx(estimator, np.zeros((1, len(FEATURES)), dtype=np.float32),
                  options={id(estimator): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    path.write_bytes(onx.SerializeToString())
    return onx


def train(cfg: TrainingConfig, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    started = time.perf_counter()
    paths = scenario_files(cfg.scenarios, cfg.max_vms)
    progress(f"collecting dry rollouts: {len(paths)} scenarios x {len(TRAIN_SEED_OFFSETS) + len(TEST_SEED_OFFSETS)}"
             " seeds")
    train_d = collect(paths, TRAIN_SEED_OFFSETS)
    test_d = collect(paths, TEST_SEED_OFFSETS)
    # Learn only from rollouts whose effects the shadows could show: a label that no feature can explain
    # (a crash hours after the bake) would teach the model the corpus's fleet shapes instead of evidence.
    fit_rows = complete(train_d) & train_d.observable.astype(bool)
    progress(f"training on {int(fit_rows.sum())} rows ({int(train_d.y[fit_rows].sum())} positives)")
    estimator = make_estimator(cfg).fit(train_d.X[fit_rows], train_d.y[fit_rows])
    held_out_seeds = split_report(test_d, predict_with_fallback(_proba_of(estimator), test_d))
    progress("holding out whole scenario families")
    families = _family_holdout(cfg, train_d, test_d)
    cfg.out.mkdir(parents=True, exist_ok=True)
    export_onnx(estimator, cfg.out / MODEL_FILE)
    parity, throughput = _check_onnx(cfg.out / MODEL_FILE, estimator, test_d)
    if parity > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX parity {parity:.2e} > {PARITY_TOLERANCE:g}: the exported model disagrees")
    meta = {"version": FEATURE_VERSION, "features": list(FEATURES), "trained_at": datetime.now(UTC).isoformat(),
            "seed": cfg.seed,
            "estimator": f"CalibratedClassifierCV(sigmoid, cv=3, ensemble=False) of GradientBoostingClassifier("
                         f"n_estimators={cfg.n_estimators}, max_depth={cfg.max_depth})",
            "scenarios": [p.name for p in paths], "train_seed_offsets": list(TRAIN_SEED_OFFSETS),
            "test_seed_offsets": list(TEST_SEED_OFFSETS)}
    (cfg.out / FEATURES_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    write_manifest(cfg.out, {"training": entries(paths, TRAIN_SEED_OFFSETS),
                             "validation": entries(paths, TEST_SEED_OFFSETS)})
    metrics = {
        "held_out_seeds": held_out_seeds, "held_out_families": families,
        "onnx_parity_max_abs_diff": parity, "inference_rows_per_second": throughput,
        "training_rows": int(fit_rows.sum()), "training_positives": int(train_d.y[fit_rows].sum()),
        "rows_left_to_the_judge_in_training": int((~complete(train_d)).sum()),
        "unobservable_rows_not_trained_on": int((complete(train_d) & ~train_d.observable.astype(bool)).sum()),
        "wall_seconds": round(time.perf_counter() - started, 1), "machine": platform.machine(),
    }
    (cfg.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (cfg.out / "README.md").write_text(model_card(meta, metrics))
    return metrics


def _family_holdout(cfg: TrainingConfig, train_d: Dataset, test_d: Dataset) -> dict[str, Any]:
    """Train without some families, score those families: generalisation to changes of a new kind."""
    fams = sorted(set(train_d.family.tolist()))
    folds = [fams[i::FAMILY_FOLDS] for i in range(FAMILY_FOLDS)]
    scores = np.zeros(len(test_d))
    for held in folds:
        fit = complete(train_d) & train_d.observable.astype(bool) & ~np.isin(train_d.family, held)
        est = make_estimator(cfg, calibrated=False).fit(train_d.X[fit], train_d.y[fit])
        mask = np.isin(test_d.family, held)
        sub = test_d.subset(mask)
        scores[mask] = predict_with_fallback(_proba_of(est), sub)
    out = split_report(test_d, scores)
    out["folds"] = folds
    return out


def _check_onnx(path: Path, estimator: Any, d: Dataset) -> tuple[float, float]:
    from ..adapters.onnx_model import _session

    _session.cache_clear()
    sess = _session(str(path))
    name = sess.get_inputs()[0].name
    x = d.X[complete(d)]
    onnx_p = np.asarray(sess.run(None, {name: x})[1])[:, 1]
    parity = float(np.max(np.abs(onnx_p - np.asarray(estimator.predict_proba(x))[:, 1]))) if len(x) else 0.0
    big = np.ascontiguousarray(np.resize(x, (200_000, x.shape[1])) if len(x) else np.zeros((1, len(FEATURES)),
                                                                                          np.float32))
    sess.run(None, {name: big[:1000]})
    t = time.perf_counter()
    sess.run(None, {name: big})
    return round(parity, 9), round(len(big) / (time.perf_counter() - t))


def model_card(meta: dict[str, Any], m: dict[str, Any]) -> str:
    def row(name: str, r: dict[str, Any]) -> str:
        f = "{:.3f}".format

        def g(k: str) -> str:
            v = r.get(k)
            return "n/a" if v is None else f(v)

        return (f"| {name} | {r['examples']} | {r['positives']} | {g('roc_auc')} | {g('oracle_roc_auc')} | "
                f"{g('judge_roc_auc')} | {g('pr_auc')} | {g('judge_pr_auc')} | {g('recall_at_precision_95')} | "
                f"{g('judge_recall_at_precision_95')} | {g('oracle_recall_at_precision_95')} | {g('brier')} | "
                f"{g('judge_brier')} | {g('oracle_brier')} |")

    head = ("| rows | examples | positives | ROC-AUC | truth ROC-AUC | judge ROC-AUC | PR-AUC | judge PR-AUC | "
            "recall@P95 | judge recall@P95 | truth recall@P95 | Brier | judge Brier | truth Brier |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    seeds = "\n".join(row(k, v) for k, v in m["held_out_seeds"].items())
    fams = "\n".join(row(k, v) for k, v in m["held_out_families"].items() if k != "folds")
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

## Data
Dry rollouts (shadow pool, bake, analysis and prediction; production untouched) of the scenario corpus
(`bench/scenarios`, fleets up to the training size limit): {len(meta['scenarios'])} scenarios, seeds
`file seed + {meta['train_seed_offsets']}` for training and `+ {meta['test_seed_offsets']}` held out.
One row per production VM; the label is the simulator's truth: would the change have affected this VM had
it reached it when the decision was made. {m['training_rows']} training rows ({m['training_positives']}
positives) from observable rollouts only: {m['unobservable_rows_not_trained_on']} rows of rollouts whose
effects start after the bake are not trained on, because no feature can explain their labels and the model
would learn the corpus's fleet shapes instead; {m['rows_left_to_the_judge_in_training']} rows with a
missing feature are left to the judge, as they are at run time.

## Features (version {meta['version']})
{', '.join(f'`{f}`' for f in meta['features'])}.
Own-stratum evidence (shadows observed, apply failures and timeouts, apply time, per-signal effect after
the untouched twins and its significance, memory slope, the judge's score), the strongest evidence of
sibling strata sharing the VM's SKU, image or scale set, the pooled evidence of all shadows, and the VM's
own traits (vCPUs, memory, orchestration mode; version 3 dropped the load features). No feature names
a SKU, an image or a scale set, so the model applies to fleets it has not seen.

## Training
{meta['estimator']}, random state {meta['seed']}, float32 features, exported with skl2onnx and run by
onnxruntime. ONNX against scikit-learn: max abs difference {m['onnx_parity_max_abs_diff']:.2e}.
Inference: {m['inference_rows_per_second']:,} VM predictions per second in one batch on this machine.

## Figures on held-out seeds
Observable: every effect's onset falls inside the bake (the shadows can see it); unobservable: some effect
starts later, so only production can show it (reported apart, as no shadow-based model can score it).

{head}
{seeds}

## Figures on held-out scenario families
Families held out in {FAMILY_FOLDS} folds ({'; '.join(', '.join(f) for f in m['held_out_families']['folds'])}):
each fold's model never saw those families (uncalibrated gradient boosting, same features).

{head}
{fams}

## Limits
* Labels come from the simulator; in Azure, retraining labels rows by what production showed
  (`shadow-rollout retrain`), which sees only the VMs that were changed.
* A change whose effect starts after the bake, or only at a load the shadows never ran at, shows nothing
  before production: the model cannot score it better than the base rate; the production waves, the error
  threshold and the watch are the guard there.
* A VM with a missing feature (no observed shadow of its stratum, an unknown SKU, no recent telemetry) is
  scored by the statistical judge, and the decision says so.
"""
