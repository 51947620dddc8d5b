"""Model or judge: the rollout uses the learned model only where it beats the judge on validation families.

On dry rollouts of ``bench/validation-families`` (never trained on), the model's and the judge's scores for the
same VMs are compared by a paired bootstrap over rollouts (a rollout's VMs share their evidence, so they are
resampled together): the model is used only when the 5th percentile of its advantage is above 0 on both ROC-AUC
and PR-AUC (Efron and Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 16; the paired design as in
DeLong-style comparisons of correlated AUCs). Otherwise the judge is used, and ``model/selection.json`` and the
model card say why, with the numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..adapters.onnx_model import SELECTION_FILE
from .dataset import Dataset

BOOTSTRAP_ROUNDS = 400
LOWER_QUANTILE = 0.05


def _metrics() -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {"roc_auc": roc_auc_score, "pr_auc": average_precision_score}


def paired_bootstrap(d: Dataset, *, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> dict[str, dict[str, float]]:
    """Per metric: the model's value, the judge's, their difference, and its bootstrap lower bound."""
    groups = np.array([f"{s}:{k}" for s, k in zip(d.scenario, d.seed, strict=True)])
    names = np.unique(groups)
    index = {g: np.nonzero(groups == g)[0] for g in names}
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, float]] = {}
    for name, metric in _metrics().items():
        model, judge = float(metric(d.y, d.model_score)), float(metric(d.y, d.judge_score))
        diffs = []
        for _ in range(rounds):
            rows = np.concatenate([index[g] for g in rng.choice(names, size=len(names), replace=True)])
            y = d.y[rows]
            if y.min() == y.max():
                continue
            diffs.append(metric(y, d.model_score[rows]) - metric(y, d.judge_score[rows]))
        lower = float(np.quantile(diffs, LOWER_QUANTILE)) if diffs else float("nan")
        out[name] = {"model": round(model, 5), "judge": round(judge, 5), "difference": round(model - judge, 5),
                     "lower_bound": round(lower, 5), "rounds": len(diffs)}
    return out


def select(d: Dataset, scenarios: list[str], seeds: list[int]) -> dict[str, Any]:
    """The choice, with the figures that made it."""
    figures = paired_bootstrap(d)
    wins = {k: v["lower_bound"] > 0 for k, v in figures.items()}
    use = "model" if all(wins.values()) else "judge"
    if use == "model":
        why = ("on the validation families the model beats the judge: the bootstrap lower bound of its advantage "
               "is above 0 on " + " and ".join(f"{k} ({v['lower_bound']:+.3f})" for k, v in figures.items()))
    else:
        lost = [k for k, ok in wins.items() if not ok]
        why = ("on the validation families the model does not beat the judge: the bootstrap lower bound of its "
               "advantage is not above 0 on " + " and ".join(
                   f"{k} (model {figures[k]['model']:.3f}, judge {figures[k]['judge']:.3f}, lower bound "
                   f"{figures[k]['lower_bound']:+.3f})" for k in lost))
    return {"model": use, "why": why, "figures": figures, "validation_scenarios": scenarios, "seeds": seeds,
            "rows": len(d), "rollouts": len(np.unique([f"{s}:{k}" for s, k in zip(d.scenario, d.seed,
                                                                                          strict=True)])),
            "bootstrap": {"rounds": BOOTSTRAP_ROUNDS, "lower_quantile": LOWER_QUANTILE, "unit": "rollout"}}


def write_selection(directory: Path, selection: dict[str, Any]) -> Path:
    path = directory / SELECTION_FILE
    path.write_text(json.dumps(selection, indent=1) + "\n")
    card = directory / "README.md"
    if card.is_file():
        card.write_text(with_selection_section(card.read_text(), selection))
    return path


def record_validation(directory: Path, d: Dataset, paths: list[Path], seed_offsets: list[int]) -> None:
    """What validation used, kept with the model: the (scenario, seed) pairs in its manifest (so a benchmark run on
    them is marked in-sample) and the rows as ``validation-rows.npz`` (the trainer validates candidates on them)."""
    import hashlib

    from ..bench.provenance import MANIFEST_FILE, entries, write_manifest
    from .trainer import VALIDATION_ROWS_FILE, PackagedRows, save_rows

    manifest = directory / MANIFEST_FILE
    uses = json.loads(manifest.read_text())["uses"] if manifest.is_file() else {}
    uses["selection"] = entries(paths, seed_offsets)
    write_manifest(directory, uses)
    ok = np.isfinite(d.X).all(axis=1) & d.observable.astype(bool)
    save_rows(PackagedRows(d.X[ok].astype(np.float32), d.y[ok].astype(np.int8), d.judge_score[ok].astype(np.float64),
                           {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}),
              directory / VALIDATION_ROWS_FILE)


SECTION = "## In use: model or judge"


def _acceptance_paragraph(selection: dict[str, Any]) -> str:
    acc = selection.get("acceptance")
    if not acc:
        return ""
    f = acc["figures"]
    verdict = "passes" if acc["passed"] else "misses it: " + "; ".join(acc["shortfalls"])
    return (f"\nHeld-out acceptance (`shadow-rollout accept-model`: `{acc['scenarios']}`, {acc['seeds']} benchmark "
            "seed(s), scored against the bar and nothing fitted on them): each figure at least the judge's and "
            f"observable ROC-AUC at least 0.95. The model {verdict}.\n\n"
            "| figure | model | judge |\n|---|---:|---:|\n"
            f"| ROC-AUC | {f['roc_auc']:.3f} | {f['judge_roc_auc']:.3f} |\n"
            f"| PR-AUC | {f['pr_auc']:.3f} | {f['judge_pr_auc']:.3f} |\n"
            f"| recall@P95 | {f['recall_at_precision_95']:.3f} | {f['judge_recall_at_precision_95']:.3f} |\n"
            f"| Brier (lower is better) | {f['brier']:.3f} | {f['judge_brier']:.3f} |\n"
            f"| observable ROC-AUC | {f['observable_roc_auc']:.3f} | |\n")


def with_selection_section(card: str, selection: dict[str, Any]) -> str:
    """The model card with its 'In use' section (re)written from the selection."""
    rows = "\n".join(f"| {k} | {v['model']:.3f} | {v['judge']:.3f} | {v['difference']:+.3f} | "
                     f"{v['lower_bound']:+.3f} |" for k, v in selection["figures"].items())
    section = (f"{SECTION}\n\nGenerated by `shadow-rollout select-model` and `shadow-rollout accept-model`; "
               "do not edit by hand.\n\n"
               f"**The rollout uses the {'learned model' if selection['model'] == 'model' else 'statistical judge'}"
               f"** (`evaluate --json` reports `\"model\": \"{selection['model']}\"`): {selection['why']}.\n\n"
               f"Dry rollouts of {len(selection['validation_scenarios'])} validation scenarios "
               f"(`bench/validation-families`, never trained on) under seeds {selection['seeds']}: "
               f"{selection['rows']} VMs of {selection['rollouts']} rollouts (their observable, complete rows are "
               "packaged as `model/validation-rows.npz`, on which the trainer validates its candidates); paired "
               "bootstrap over rollouts, "
               f"{selection['bootstrap']['rounds']} rounds, lower bound at the "
               f"{selection['bootstrap']['lower_quantile']:.0%} quantile.\n\n"
               "| figure | model | judge | difference | lower bound |\n|---|---:|---:|---:|---:|\n" + rows + "\n"
               + _acceptance_paragraph(selection))
    head = card.split(SECTION, 1)[0].rstrip() + "\n\n"
    return head + section
