"""The ONNX failure model at run time: parity with scikit-learn, schema refusal, fallback to the judge."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shared.adapters.onnx_model import FEATURES_FILE, OnnxFailureModel, _session
from shared.domain.errors import ModelError
from shared.domain.features import FEATURE_VERSION, FEATURES, FeatureTable, StratumEvidence, build_features
from shared.domain.model import Stratum, VmInfo
from shared.learning.train import TrainingConfig, export_onnx, make_estimator


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 5] + rng.normal(0, 0.5, n) > 0.8).astype(int)
    return x, y


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    d = tmp_path_factory.mktemp("model")
    x, y = synthetic(600, 1)
    est = make_estimator(TrainingConfig(scenarios=Path("."), n_estimators=30)).fit(x, y)
    export_onnx(est, d / "failure_model.onnx")
    (d / FEATURES_FILE).write_text(json.dumps({"version": FEATURE_VERSION, "features": list(FEATURES)}))
    _session.cache_clear()
    return d, est


def table(x: np.ndarray, judge: float | None = 0.2) -> FeatureTable:
    ids = [f"vm{i}" for i in range(len(x))]
    return FeatureTable(ids, ["web|Standard_D2s_v5|u22|1"] * len(x), x, [judge] * len(x))


def test_onnx_agrees_with_scikit_learn_within_1e_4(trained: tuple[Path, object]) -> None:
    d, est = trained
    x, _ = synthetic(2000, 2)
    onnx_p = np.array([r.probability for r in OnnxFailureModel(d).predict(table(x))])
    sk_p = est.predict_proba(x)[:, 1]  # type: ignore[attr-defined]
    assert np.max(np.abs(onnx_p - sk_p)) <= 1e-4


def test_a_model_of_another_feature_schema_is_refused(trained: tuple[Path, object], tmp_path: Path) -> None:
    d, _ = trained
    (tmp_path / "failure_model.onnx").write_bytes((d / "failure_model.onnx").read_bytes())
    (tmp_path / FEATURES_FILE).write_text(json.dumps({"version": "0", "features": list(FEATURES[:-1])}))
    with pytest.raises(ModelError, match=r"feature schema mismatch: .* version '0' \(17 features\), this code "
                                         rf"computes version '{FEATURE_VERSION}' \(18 features\); retrain"):
        OnnxFailureModel(tmp_path)


def test_rows_with_missing_features_fall_back_to_the_judge_and_say_why(trained: tuple[Path, object]) -> None:
    d, _ = trained
    x, _ = synthetic(3, 3)
    x[1, FEATURES.index("own_worst_effect")] = np.nan
    x[2, FEATURES.index("vm_vcpus")] = np.nan
    risks = OnnxFailureModel(d).predict(table(x, judge=0.07))
    assert risks[0].source == "model" and risks[0].probability is not None
    assert risks[1].source == "judge (fallback: no shadow of its stratum was observed)"
    assert risks[1].probability == 0.07
    assert risks[2].source == "judge (fallback: its SKU is not known to the model)"


def test_an_unknown_sku_leaves_its_size_features_missing() -> None:
    key = Stratum("web", "Standard_Z9_v9", "u22", "1").key
    ev = StratumEvidence(key, "Successful", 0.01, 2, 0.0, 0.0, 1.0, {"cpu": 0.0}, {"cpu": 0.1}, -0.01, 0.4)
    vms = [VmInfo("vm0", "web", "Standard_Z9_v9", "u22", "1"), VmInfo("vm1", "web", "Standard_D2s_v5", "u22", "1")]
    t = build_features(vms, {key: ev}, None)
    assert "vm_vcpus" in t.missing(0)
    assert t.row(1)["own_observed"] != t.row(1)["own_observed"]  # vm1's stratum has no evidence: NaN


def test_sibling_strata_evidence_excludes_the_vms_own_stratum() -> None:
    a = Stratum("web", "Standard_D2s_v5", "u20", "1")
    b = Stratum("web", "Standard_D2s_v5", "u20", "2")
    c = Stratum("api", "Standard_D4s_v5", "u22", "1")

    def ev(s: Stratum, score: float) -> StratumEvidence:
        return StratumEvidence(s.key, "Failed" if score > 0.5 else "Successful", score, 2, 0.0, 0.0, 1.0)

    t = build_features([VmInfo("v", "web", "Standard_D2s_v5", "u20", "2")],
                       {a.key: ev(a, 0.97), b.key: ev(b, 0.02), c.key: ev(c, 0.01)}, None)
    row = t.row(0)
    assert row["own_judge_score"] == pytest.approx(0.02)
    assert row["sku_max_score"] == pytest.approx(0.97) and row["image_max_score"] == pytest.approx(0.97)
    assert row["set_max_score"] == pytest.approx(0.97)
