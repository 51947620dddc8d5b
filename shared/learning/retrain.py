"""Retraining from the rollout store's history, with a guard: a worse model is never promoted.

Labels are what production showed, and only where it showed something (:func:`label_of`): a changed VM that
the production checks or the watch queued for rollback failed; a changed VM that stayed healthy through a
rollout that ran its watch to the end did not. VMs that were skipped (predicted to fail) or never reached
carry no label and are left out, not counted as safe: a model taught on them would learn that being skipped
means being safe. They are excluded rather than re-weighted because the skip is a deterministic threshold on
the model's own score, so their chance of being labelled is zero and no inverse-propensity weight exists;
the packaged training data (simulated rollouts, where every VM is labelled) covers the risky region instead.

The newest rollouts are held out and both the candidate and what is in use score them; whether the candidate
is promoted is one rule, :func:`candidate_beats`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..domain.features import FEATURE_VERSION, FEATURES
from ..ports import RolloutStore

MIN_ROWS = 500
HOLDOUT_SHARE = 0.25
WATCHED_TO_THE_END = ("completed", "halted")
"""Rollout states in which every changed VM still on the new config went through the production checks."""


def label_of(vm: Mapping[str, Any], rollout_state: str | None) -> int | None:
    """1 failed, 0 healthy, None unlabelled (never changed, or changed but not watched to the end)."""
    if "apply" not in vm:
        return None
    if vm.get("rollback"):
        return 1
    return 0 if rollout_state in WATCHED_TO_THE_END else None


@dataclass
class History:
    X: np.ndarray
    y: np.ndarray
    rollout: np.ndarray
    started: np.ndarray
    judge: np.ndarray
    fleet_rows: int = 0
    """Every VM row with features in those rollouts, labelled or not."""

    @property
    def labelled_share(self) -> float:
        return round(len(self.y) / self.fleet_rows, 4) if self.fleet_rows else 0.0

    @property
    def rollouts(self) -> int:
        return len(set(self.rollout.tolist()))


def history_rows(stores: Sequence[RolloutStore]) -> History:
    """Labelled rows of every rollout in the stores (see :func:`label_of`); the rest are counted, not used."""
    xs: list[list[float]] = []
    ys: list[int] = []
    rids: list[str] = []
    started: list[str] = []
    judge: list[float] = []
    fleet = 0
    for store in stores:
        for rid in store.rollout_ids():
            record = store.get_rollout(rid) or {}
            for v in store.get_items(rid, "vm").values():
                if "features" not in v:
                    continue
                fleet += 1
                label = label_of(v, record.get("state"))
                if label is None:
                    continue
                xs.append([np.nan if v["features"].get(f) is None else v["features"][f] for f in FEATURES])
                ys.append(label)
                rids.append(rid)
                started.append(record.get("started_at", ""))
                score = v.get("judge_score")
                judge.append(np.nan if score is None else float(score))
    return History(np.array(xs, dtype=np.float32).reshape(-1, len(FEATURES)), np.array(ys, dtype=np.int8),
                   np.array(rids), np.array(started), np.array(judge, dtype=np.float64), fleet)


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str


def candidate_beats(candidate: Mapping[str, Any], current: Mapping[str, Any], *, current_name: str,
                    rows: int) -> Verdict:
    """The promotion rule, in one place: the candidate must be at least as good on ROC-AUC and on Brier
    score, measured on the same held-out rows. (Issue 15 replaces this rule; callers only call it.)"""
    cand_auc, cur_auc = candidate.get("roc_auc") or 0.0, current.get("roc_auc") or 0.0
    worse = cand_auc < cur_auc or candidate["brier"] > current["brier"]
    if worse:
        return Verdict(False, f"candidate ROC-AUC {candidate.get('roc_auc')} / Brier {candidate['brier']} is worse "
                              f"than the current model's ({current_name}) {current.get('roc_auc')} / "
                              f"{current['brier']} on {rows} held-out rows; keeping the current model")
    return Verdict(True, f"candidate ROC-AUC {candidate.get('roc_auc')} / Brier {candidate['brier']} on {rows} "
                         f"held-out rows is not worse than the current model's ({current_name}) "
                         f"{current.get('roc_auc')} / {current['brier']}")


@dataclass
class Split:
    fit: np.ndarray
    test: np.ndarray
    held_rollouts: int


def split_by_time(h: History, ok: np.ndarray, holdout_share: float = HOLDOUT_SHARE) -> Split:
    """Hold out the newest rollouts: the candidate is judged on what came after everything it learnt from."""
    order = sorted(set(zip(h.started[ok].tolist(), h.rollout[ok].tolist(), strict=True)))
    cut = max(1, int(len(order) * (1 - holdout_share)))
    held = {rid for _, rid in order[cut:]}
    test = ok & np.isin(h.rollout, list(held))
    return Split(ok & ~test, test, len(held))


def retrain(stores: Sequence[RolloutStore], model_dir: Path, *, seed: int = 0) -> dict[str, Any]:
    """Train a candidate on the older rollouts; promote it over ``model_dir`` only if it is not worse.

    The local form (a model directory); in Azure the trainer promotes into the model registry instead
    (:mod:`shared.learning.trainer`).
    """
    from ..adapters.onnx_model import FEATURES_FILE, MODEL_FILE, OnnxFailureModel, _session, model_available
    from .metrics import figures
    from .train import TrainingConfig, export_onnx, make_estimator

    h = history_rows(stores)
    ok = np.isfinite(h.X).all(axis=1)
    if ok.sum() < MIN_ROWS or len(set(h.y[ok].tolist())) < 2:
        return {"promoted": False, "reason": f"not enough labelled history: {int(ok.sum())} complete rows "
                f"({int(h.y[ok].sum())} failures); need {MIN_ROWS} with both outcomes"}
    split = split_by_time(h, ok)
    fit, test = split.fit, split.test
    if len(set(h.y[fit].tolist())) < 2 or len(set(h.y[test].tolist())) < 2:
        return {"promoted": False, "reason": "the history's older and newer rollouts do not both show failures "
                                             "and successes; nothing to compare on"}
    candidate = make_estimator(TrainingConfig(scenarios=Path("."), seed=seed)).fit(h.X[fit], h.y[fit])
    cand = figures(h.y[test], np.asarray(candidate.predict_proba(h.X[test]))[:, 1])
    result: dict[str, Any] = {"rows": int(fit.sum()), "held_out_rows": int(test.sum()), "candidate": cand}
    if model_available(model_dir):
        current = figures(h.y[test], OnnxFailureModel(model_dir).probabilities(h.X[test]))
        result["current"] = current
        verdict = candidate_beats(cand, current, current_name=str(model_dir), rows=int(test.sum()))
        if not verdict.promote:
            result.update(promoted=False, reason=verdict.reason)
            return result
    model_dir.mkdir(parents=True, exist_ok=True)
    export_onnx(candidate, model_dir / MODEL_FILE)
    (model_dir / FEATURES_FILE).write_text(json.dumps({
        "version": FEATURE_VERSION, "features": list(FEATURES), "trained_at": datetime.now(UTC).isoformat(),
        "seed": seed, "estimator": "retrained from the rollout store's history",
        "history_rows": int(fit.sum())}, indent=2) + "\n")
    _session.cache_clear()  # the next prediction in this process loads the promoted model
    result.update(promoted=True, reason=f"candidate ROC-AUC {cand['roc_auc']} / Brier {cand['brier']} on "
                  f"{int(test.sum())} held-out rows is not worse than the current model")
    return result
