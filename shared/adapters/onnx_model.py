"""The trained failure model, run by onnxruntime: one session per process, the whole fleet in one call."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..domain.decisions import VmRisk
from ..domain.errors import ModelError
from ..domain.features import FEATURE_VERSION, FEATURES, FeatureTable
from ..ports import FailureModel

MODEL_DIR = Path(__file__).resolve().parents[2] / "model"
MODEL_FILE = "failure_model.onnx"
FEATURES_FILE = "features.json"

_WHY_MISSING = {
    "own": "no shadow of its stratum was observed",
    "vm_vcpus": "its SKU is not known to the model",
    "vm_memory_gib": "its SKU is not known to the model",
    "fleet": "no pooled shadow evidence",
}


def why_missing(feature: str) -> str:
    return _WHY_MISSING.get(feature, _WHY_MISSING.get(feature.split("_", 1)[0], f"no value for {feature}"))


@lru_cache(maxsize=4)
def _session(path: str) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def model_available(directory: Path = MODEL_DIR) -> bool:
    return (directory / MODEL_FILE).is_file() and (directory / FEATURES_FILE).is_file()


class OnnxFailureModel(FailureModel):
    name = "onnx"

    def __init__(self, directory: Path = MODEL_DIR) -> None:
        meta_path = directory / FEATURES_FILE
        model_path = directory / MODEL_FILE
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read the model's feature schema {meta_path}: {exc}") from exc
        if meta.get("version") != FEATURE_VERSION or tuple(meta.get("features", ())) != FEATURES:
            raise ModelError(f"feature schema mismatch: the model in {directory} was trained on features version "
                             f"{meta.get('version')!r} ({len(meta.get('features', ()))} features), this code computes "
                             f"version {FEATURE_VERSION!r} ({len(FEATURES)} features); retrain the model")
        if not model_path.is_file():
            raise ModelError(f"model file {model_path} is missing")
        self.meta = meta
        self.session = _session(str(model_path))
        self.input_name = self.session.get_inputs()[0].name

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """Failure probability of each row (rows must be complete)."""
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(matrix, dtype=np.float32)})
        return np.asarray(out[1], dtype=np.float64)[:, 1]

    def predict(self, table: FeatureTable) -> list[VmRisk]:
        complete = np.isfinite(table.matrix).all(axis=1)
        probs = np.full(len(table.vm_ids), np.nan)
        if complete.any():
            probs[complete] = self.probabilities(table.matrix[complete])
        rounded = np.round(probs, 6).tolist()
        ok = complete.tolist()
        return [VmRisk(vm, key, rounded[i], "model") if ok[i] else
                _fallback(vm, key, table.judge_scores[i], why_missing(table.missing(i)[0]))
                for i, (vm, key) in enumerate(zip(table.vm_ids, table.stratum_keys, strict=True))]


def _fallback(vm_id: str, stratum_key: str, judge_score: float | None, why: str) -> VmRisk:
    return VmRisk(vm_id, stratum_key, judge_score, f"judge (fallback: {why})", fallback=why)
