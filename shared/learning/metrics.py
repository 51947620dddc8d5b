"""The evaluation figures of the contract: ROC-AUC, PR-AUC, recall at precision 0.95, Brier score."""

from __future__ import annotations

from typing import Any

import numpy as np


def figures(y: np.ndarray, score: np.ndarray, prefix: str = "") -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, brier_score_loss, precision_recall_curve, roc_auc_score

    y = np.asarray(y).astype(int)
    s = np.clip(np.asarray(score, dtype=float), 0.0, 1.0)
    out: dict[str, Any] = {f"{prefix}examples": len(y), f"{prefix}positives": int(y.sum())}
    if len(set(y.tolist())) < 2:
        out.update({f"{prefix}roc_auc": None, f"{prefix}pr_auc": None, f"{prefix}recall_at_precision_95": None,
                    f"{prefix}brier": round(float(brier_score_loss(y, s)), 5) if len(y) else None})
        return out
    precision, recall, _ = precision_recall_curve(y, s)
    ok = precision >= 0.95
    out.update({
        f"{prefix}roc_auc": round(float(roc_auc_score(y, s)), 5),
        f"{prefix}pr_auc": round(float(average_precision_score(y, s)), 5),
        f"{prefix}recall_at_precision_95": round(float(recall[ok].max()) if ok.any() else 0.0, 5),
        f"{prefix}brier": round(float(brier_score_loss(y, s)), 5),
    })
    return out


def report(y: np.ndarray, model: np.ndarray, judge: np.ndarray, oracle: np.ndarray) -> dict[str, Any]:
    """The model's figures, the judge's as ``judge_*`` and the truth's own ROC-AUC as the ceiling."""
    out = figures(y, model)
    out.update({k: v for k, v in figures(y, judge, "judge_").items() if k not in ("judge_examples",
                                                                                    "judge_positives")})
    ceiling = figures(y, oracle, "oracle_")
    out["oracle_roc_auc"] = ceiling["oracle_roc_auc"]
    out["oracle_pr_auc"] = ceiling["oracle_pr_auc"]
    out["oracle_recall_at_precision_95"] = ceiling["oracle_recall_at_precision_95"]
    out["oracle_brier"] = ceiling["oracle_brier"]
    return out
