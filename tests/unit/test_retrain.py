"""Retraining from the store's history: labels from what production showed; a worse model is never promoted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shared.adapters.memory_store import InMemoryRolloutStore
from shared.adapters.onnx_model import FEATURES_FILE, MODEL_FILE, _session
from shared.domain.features import FEATURE_VERSION, FEATURES
from shared.learning.retrain import history_rows, retrain
from shared.learning.train import TrainingConfig, export_onnx, make_estimator


def store_with(rollouts: int, vms: int, *, flip: bool, seed: int, start_day: int) -> InMemoryRolloutStore:
    """Rollouts whose failures follow feature 0; with ``flip`` the recorded outcomes say the opposite."""
    rng = np.random.default_rng(seed)
    store = InMemoryRolloutStore()
    for r in range(rollouts):
        rid = f"r{seed}-{r}"
        store.put_rollout(rid, {"state": "completed", "started_at": f"2026-01-{start_day + r:02d}T00:00:00+00:00"})
        items = {}
        for v in range(vms):
            x = rng.normal(size=len(FEATURES))
            failed = (x[0] > 0.5) != flip
            items[f"{rid}-vm{v}"] = {"apply": {"status": "ok"}, "features": dict(zip(FEATURES, x.tolist(),
                                                                                      strict=True)),
                                     **({"rollback": {"state": "verified"}} if failed else {})}
        items[f"{rid}-untouched"] = {"features": dict.fromkeys(FEATURES, 0.0)}
        store.put_items(rid, "vm", items)
    return store


def current_model(directory: Path) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2000, len(FEATURES))).astype(np.float32)
    est = make_estimator(TrainingConfig(scenarios=Path("."), n_estimators=30)).fit(x, (x[:, 0] > 0.5).astype(int))
    directory.mkdir(parents=True, exist_ok=True)
    export_onnx(est, directory / MODEL_FILE)
    (directory / FEATURES_FILE).write_text(json.dumps({"version": FEATURE_VERSION, "features": list(FEATURES)}))
    _session.cache_clear()


def test_history_labels_only_changed_vms_by_whether_they_were_rolled_back() -> None:
    h = history_rows([store_with(2, 50, flip=False, seed=1, start_day=1)])
    assert len(h.y) == 100  # the untouched VMs carry no label
    np.testing.assert_array_equal(h.y, (h.X[:, 0] > 0.5).astype(int))


def test_too_little_history_is_not_promoted(tmp_path: Path) -> None:
    result = retrain([store_with(1, 50, flip=False, seed=2, start_day=1)], tmp_path)
    assert not result["promoted"] and "not enough labelled history: 50 complete rows" in result["reason"]
    assert not (tmp_path / MODEL_FILE).exists()


def test_a_good_candidate_is_promoted_when_there_is_no_model(tmp_path: Path) -> None:
    result = retrain([store_with(8, 100, flip=False, seed=3, start_day=1)], tmp_path / "m", seed=0)
    assert result["promoted"], result["reason"]
    assert (tmp_path / "m" / MODEL_FILE).exists()
    assert json.loads((tmp_path / "m" / FEATURES_FILE).read_text())["version"] == FEATURE_VERSION


def test_a_candidate_worse_than_the_current_model_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "model"
    current_model(model)
    before = (model / MODEL_FILE).read_bytes()
    older = store_with(6, 100, flip=True, seed=4, start_day=1)   # history that taught the wrong lesson
    newer = store_with(2, 100, flip=False, seed=5, start_day=20)  # the newest rollouts, held out
    result = retrain([older, newer], model)
    assert not result["promoted"]
    assert "worse than the current model's" in result["reason"]
    assert (model / MODEL_FILE).read_bytes() == before
