"""Retraining from the rollout store's history, with a guard: a worse model is never promoted.

In Azure the labels are what production showed: a changed VM that the rollout had to roll back failed,
a changed VM that stayed healthy through the watch did not; VMs never changed carry no label. The newest
rollouts are held out and both the candidate and the current model score them; the candidate is promoted
only if it is at least as good on ROC-AUC and Brier score.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..domain.features import FEATURE_VERSION, FEATURES
from ..ports import RolloutStore

MIN_ROWS = 500
HOLDOUT_SHARE = 0.25
FINISHED = ("completed", "halted", "aborted")


@dataclass
class History:
    X: np.ndarray
    y: np.ndarray
    rollout: np.ndarray
    started: np.ndarray


def history_rows(stores: Sequence[RolloutStore]) -> History:
    """Labelled rows of every finished rollout: changed VMs only, labelled by whether they were rolled back."""
    xs: list[list[float]] = []
    ys: list[int] = []
    rids: list[str] = []
    started: list[str] = []
    for store in stores:
        for rid in store.rollout_ids():
            record = store.get_rollout(rid) or {}
            if record.get("state") not in FINISHED:
                continue
            for v in store.get_items(rid, "vm").values():
                if "apply" not in v or "features" not in v:
                    continue
                xs.append([np.nan if v["features"].get(f) is None else v["features"][f] for f in FEATURES])
                ys.append(1 if v.get("rollback") else 0)
                rids.append(rid)
                started.append(record.get("started_at", ""))
    return History(np.array(xs, dtype=np.float32).reshape(-1, len(FEATURES)), np.array(ys, dtype=np.int8),
                   np.array(rids), np.array(started))


def retrain(stores: Sequence[RolloutStore], model_dir: Path, *, seed: int = 0) -> dict[str, Any]:
    """Train a candidate on the older rollouts; promote it over ``model_dir`` only if it is not worse."""
    from ..adapters.onnx_model import FEATURES_FILE, MODEL_FILE, OnnxFailureModel, _session, model_available
    from .metrics import figures
    from .train import TrainingConfig, export_onnx, make_estimator

    h = history_rows(stores)
    ok = np.isfinite(h.X).all(axis=1)
    if ok.sum() < MIN_ROWS or len(set(h.y[ok].tolist())) < 2:
        return {"promoted": False, "reason": f"not enough labelled history: {int(ok.sum())} complete rows "
                f"({int(h.y[ok].sum())} failures); need {MIN_ROWS} with both outcomes"}
    order = sorted(set(zip(h.started[ok].tolist(), h.rollout[ok].tolist(), strict=True)))
    cut = max(1, int(len(order) * (1 - HOLDOUT_SHARE)))
    held = {rid for _, rid in order[cut:]}
    test = ok & np.isin(h.rollout, list(held))
    fit = ok & ~test
    if len(set(h.y[fit].tolist())) < 2 or len(set(h.y[test].tolist())) < 2:
        return {"promoted": False, "reason": "the history's older and newer rollouts do not both show failures "
                                             "and successes; nothing to compare on"}
    candidate = make_estimator(TrainingConfig(scenarios=Path("."), seed=seed)).fit(h.X[fit], h.y[fit])
    cand = figures(h.y[test], np.asarray(candidate.predict_proba(h.X[test]))[:, 1])
    result: dict[str, Any] = {"rows": int(fit.sum()), "held_out_rows": int(test.sum()), "candidate": cand}
    if model_available(model_dir):
        current = figures(h.y[test], OnnxFailureModel(model_dir).probabilities(h.X[test]))
        result["current"] = current
        worse = (cand["roc_auc"] or 0.0) < (current["roc_auc"] or 0.0) or cand["brier"] > current["brier"]
        if worse:
            result.update(promoted=False, reason=f"candidate ROC-AUC {cand['roc_auc']} / Brier {cand['brier']} is "
                          f"worse than the current model's {current['roc_auc']} / {current['brier']} on "
                          f"{int(test.sum())} held-out rows; keeping the current model")
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
