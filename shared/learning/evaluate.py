"""``shadow-rollout evaluate``: the shipped failure model against the judge and the truth, per VM."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .dataset import collect, scenario_files
from .metrics import report


def evaluate(scenarios: Path, seeds: int, *, max_vms: int = 10_000, seed_offset: int = 0,
             progress: Callable[[], None] | None = None, model_dir: Path | None = None) -> dict[str, Any]:
    """Dry rollouts (predictions only) of every scenario under ``seeds`` seeds, scored with the shipped model.

    Every production VM of every run counts, good changes and bad; the model's score is what the rollout
    itself used (the judge's where the model fell back). The judge scores an inconclusive stratum 0.5.
    With ``model_dir``, that ONNX model scores the VMs whatever ``selection.json`` says (``accept-model``).
    """
    from ..adapters.statistical_model import StatisticalFailureModel
    from ..bootstrap import failure_model

    paths = scenario_files(scenarios, max_vms)
    d = collect(paths, range(seed_offset, seed_offset + seeds), use_model=True, progress=progress,
                model_dir=model_dir)
    out = report(d.y, d.model_score, d.judge_score, d.oracle_score)
    out["model"] = ("model" if model_dir is not None
                    else "judge" if isinstance(failure_model(), StatisticalFailureModel) else "model")
    out["seed_offset"] = seed_offset
    out["runs"] = len(paths) * seeds
    obs = d.observable.astype(bool)
    for name, mask in (("observable", obs), ("unobservable", ~obs)):
        if mask.any():
            out[name] = report(d.y[mask], d.model_score[mask], d.judge_score[mask], d.oracle_score[mask])
    return out
