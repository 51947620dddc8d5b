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
from ..domain.registry import FEATURES_FILE, MODEL_FILE, ModelInUse, ModelSource, packaged_version
from ..ports import FailureModel

MODEL_DIR = Path(__file__).resolve().parents[2] / "model"
__all__ = ["FEATURES_FILE", "MODEL_DIR", "MODEL_FILE", "OnnxFailureModel", "check_schema", "model_available"]

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


def check_schema(meta: dict[str, Any], where: str) -> None:
    """A model scores only rows built the way it was trained: same feature version, same columns in order."""
    if meta.get("version") != FEATURE_VERSION or tuple(meta.get("features", ())) != FEATURES:
        raise ModelError(f"feature schema mismatch: the model in {where} was trained on features version "
                         f"{meta.get('version')!r} ({len(meta.get('features', ()))} features), this code computes "
                         f"version {FEATURE_VERSION!r} ({len(FEATURES)} features); retrain the model")


class OnnxFailureModel(FailureModel):
    """``version`` names it in decisions: a registry version, or by default the packaged model's content hash."""

    name = "onnx"

    def __init__(self, directory: Path = MODEL_DIR, *, version: str | None = None,
                 source: ModelSource = ModelSource.PACKAGED) -> None:
        meta_path = directory / FEATURES_FILE
        model_path = directory / MODEL_FILE
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read the model's feature schema {meta_path}: {exc}") from exc
        check_schema(meta, str(directory))
        if not model_path.is_file():
            raise ModelError(f"model file {model_path} is missing")
        self.meta = meta
        self.version = version or packaged_version(model_path.read_bytes())
        self.source = source
        self.session = _session(str(model_path))
        self.input_name = self.session.get_inputs()[0].name

    def in_use(self) -> ModelInUse:
        return ModelInUse(version=self.version, source=self.source)

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
        return [VmRisk(vm, key, rounded[i], "model", model_version=self.version) if ok[i] else
                _fallback(vm, key, table.judge_scores[i], why_missing(table.missing(i)[0]), self.version)
                for i, (vm, key) in enumerate(zip(table.vm_ids, table.stratum_keys, strict=True))]


def _fallback(vm_id: str, stratum_key: str, judge_score: float | None, why: str, version: str) -> VmRisk:
    return VmRisk(vm_id, stratum_key, judge_score, f"judge (fallback: {why})", fallback=why, model_version=version)
