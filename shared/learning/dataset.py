"""Training data from recorded rollouts: one row per production VM per rollout.

Features are read from the rollout store, exactly as the ``decide`` step recorded them; labels (would the
change really have affected this VM) come from the simulator's truth, joined here and only here. In Azure
the retraining path labels rows with what production showed instead (``shared/learning/retrain.py``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..domain.features import FEATURES

OBSERVABLE_MARGIN_MINUTES = 5


@dataclass
class Dataset:
    """Rows of features with labels and what else a fair evaluation needs."""

    X: np.ndarray
    y: np.ndarray
    model_score: np.ndarray  # what the rollout's own FailureModel said (judge fallback included)
    judge_score: np.ndarray
    oracle_score: np.ndarray
    scenario: np.ndarray
    family: np.ndarray
    seed: np.ndarray
    observable: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask: np.ndarray) -> Dataset:
        return Dataset(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))

    @classmethod
    def concat(cls, parts: Sequence[Dataset]) -> Dataset:
        if not parts:
            return cls(np.zeros((0, len(FEATURES)), np.float32), *(np.zeros(0) for _ in range(8)))
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))


def observable(scenario: Any, bake_minutes: int) -> bool:
    """Whether the shadows can show every effect: its onset falls inside the bake with minutes to spare."""
    return all(e.onset_minutes + OBSERVABLE_MARGIN_MINUTES <= bake_minutes for e in scenario.change.truth.effects)


def rollout_rows(path: str, seed: int, *, use_model: bool = False, model_dir: Path | None = None) -> Dataset:
    """Run one dry rollout (shadows and predictions, production untouched) and label its VMs."""
    from ..adapters.simulator.adapters import to_minute
    from ..adapters.simulator.scenario import load_scenario
    from ..adapters.statistical_model import StatisticalFailureModel
    from ..simulation import simulate

    sc = load_scenario(path)
    sc = sc.model_copy(update={"policy": {**sc.policy, "dry_run": True, "production_watch_minutes": 0}})

    from ..adapters.onnx_model import OnnxFailureModel

    model = (OnnxFailureModel(model_dir) if use_model and model_dir is not None else None if use_model
             else StatisticalFailureModel())
    run = simulate(sc, seed=seed, model=model)
    record = run.services.store.get_rollout(run.rollout_id) or {}
    items = run.services.store.get_items(run.rollout_id, "vm")
    if "decided_at" not in record:
        return Dataset.concat([])
    minute = to_minute(datetime.fromisoformat(record["decided_at"]))
    ids = list(items)
    idx = run.world.indices(ids)
    n = len(ids)
    X = np.array([[np.nan if items[v]["features"][f] is None else items[v]["features"][f] for f in FEATURES]
                  for v in ids], dtype=np.float32)

    def score(v: Any) -> float:
        return 0.5 if v is None else float(v)  # an inconclusive judge says "don't know"

    policy = sc.rollout_policy()
    return Dataset(
        X=X, y=run.world.affected_if_applied(idx, minute).astype(np.int8),
        model_score=np.array([score(items[v].get("risk")) for v in ids]),
        judge_score=np.array([score(items[v].get("judge_score")) for v in ids]),
        oracle_score=run.world.truth_risk(idx, minute),
        scenario=np.array([sc.name] * n), family=np.array([sc.family or sc.name] * n),
        seed=np.full(n, run.world.seed), observable=np.full(n, observable(sc, policy.bake_minutes)))


def _job(args: tuple[str, int, bool, Path | None]) -> Dataset:
    return rollout_rows(args[0], args[1], use_model=args[2], model_dir=args[3])


def collect(paths: Sequence[Path], seed_offsets: Sequence[int], *, use_model: bool = False,
            processes: int | None = None, progress: Any = None, model_dir: Path | None = None) -> Dataset:
    """Rows of every scenario under each seed ``file seed + offset``, run in a process pool."""
    from ..adapters.simulator.scenario import load_scenario

    jobs = [(str(p), load_scenario(p).seed + k, use_model, model_dir) for p in paths for k in seed_offsets]
    workers = processes or min(2, os.cpu_count() or 1)
    parts: list[Dataset] = []
    with ProcessPoolExecutor(workers) as pool:
        for part in pool.map(_job, jobs):
            parts.append(part)
            if progress is not None:
                progress()
    return Dataset.concat(parts)


def scenario_files(directory: Path, max_vms: int) -> list[Path]:
    from ..adapters.simulator.scenario import load_scenario

    out = []
    for p in sorted(directory.glob("*.y*ml")) + sorted(directory.glob("*.json")):
        sc = load_scenario(p)
        if sum(s.capacity for s in sc.fleet.scale_sets) <= max_vms:
            out.append(p)
    return out
