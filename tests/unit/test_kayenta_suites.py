"""Kayenta's own judge and Mann-Whitney test suites, run against the port (shared/strategies/kayenta.py).

The cases (inputs and expected results, never Kayenta's code) are read from spinnaker/kayenta's ScorerSuite,
ClassifierSuite, DetectorSuite, TransformSuite and MannWhitneySuite by tests/fixtures/kayenta/extract_cases.py
into cases.json. A case that needs a feature the peer does not use is skipped, naming the feature.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import norm

from shared.strategies import kayenta

CASES = json.loads((Path(__file__).parents[1] / "fixtures" / "kayenta" / "cases.json").read_text())
E = 1e-6  # MannWhitneySuite's tolerance


def cases(suite: str) -> list[Any]:
    return [pytest.param(c, id=c["name"]) for c in CASES["suites"][suite]["cases"]]


def arr(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=float)


@pytest.mark.parametrize("case", cases("scorer"))
def test_kayenta_scorer_suite(case: dict[str, Any]) -> None:
    results = [kayenta.MetricResult(m["name"], kayenta.Classification(m["classification"]), "", 1.0, m["group"],
                                    m["critical"]) for m in case["metrics"]]
    judgement = kayenta.score(results, case["weights"])
    assert judgement.score == pytest.approx(case["expected"], abs=1e-9)
    if case["expected_group_scores"] is not None:
        assert sorted(judgement.group_scores.values()) == case["expected_group_scores"]


@pytest.mark.parametrize("case", cases("classifier"))
def test_kayenta_classifier_suite(case: dict[str, Any]) -> None:
    if case["classifier"] != "MannWhitneyClassifier":
        pytest.skip(f"{case['classifier']}: the canary peer uses Kayenta's default MannWhitneyClassifier only")
    if case.get("effectSizeMeasure") == "cles":
        pytest.skip("effectSizeMeasure cles: the canary peer uses Kayenta's default meanRatio")
    a = case["arrays"]
    decrease, increase = case.get("effectSizeThresholds", [1.0, 1.0])
    crit_decrease, crit_increase = case.get("criticalThresholds", [1.0, 1.0])
    strategy = kayenta.NanStrategy(case["nanStrategy"])
    result = kayenta.classify(
        "m", kayenta.transform(arr(a["controlData"]), nan_strategy=strategy, remove_outliers=False),
        kayenta.transform(arr(a["experimentData"]), nan_strategy=strategy, remove_outliers=False),
        kayenta.Direction(case["direction"]), "g", tolerance=case["tolerance"], confidence=case["confLevel"],
        allowed_increase=increase, allowed_decrease=decrease, nan_strategy=strategy, critical=case["critical"],
        data_required=case["dataRequired"], critical_increase=crit_increase, critical_decrease=crit_decrease)
    if case["expected"] is None:  # "Missing Data: Reason String": the reason is never empty
        assert result.reason
        return
    assert result.classification.value == case["expected"]
    if "expected_critical" in case:
        assert result.critical is case["expected_critical"]
    if case.get("expected_deviation_nan"):
        assert math.isnan(result.ratio)


def _mw_case(name: str) -> dict[str, Any]:
    return next(c for c in CASES["suites"]["mannwhitney"]["cases"] if c["name"] == name)


def test_kayenta_mannwhitney_suite_wilcoxon_diff() -> None:
    c = _mw_case("Wilcoxon Diff Function")
    x, y = arr(c["arrays"]["x"]), arr(c["arrays"]["y"])
    assert kayenta._wilcoxon_diff(0, 0, x, y) == pytest.approx(-1.229416, abs=E)
    assert kayenta._wilcoxon_diff(5, 0, x, y) == pytest.approx(-35.80606, abs=E)


def test_kayenta_mannwhitney_suite_z_quantile() -> None:
    assert norm.ppf(0.02 / 2) == pytest.approx(-2.326348, abs=E)


def test_kayenta_mannwhitney_suite_interval_and_estimate() -> None:
    c = _mw_case("Mann-Whitney Confidence Interval & Estimate")
    lower, upper, estimate = kayenta.mann_whitney_interval(arr(c["arrays"]["experimentData"]),
                                                           arr(c["arrays"]["controlData"]), 0.95)
    assert (lower, upper, estimate) == pytest.approx((6.0, 39.0, 22.5), abs=E)


def test_kayenta_mannwhitney_suite_problem_case_keeps_kayentas_coarse_root_tolerance() -> None:
    """Values near 0.0333 differing by 1e-5: Brent's absolute tolerance 1e-4 leaves the estimate at a bound."""
    c = _mw_case("Mann-Whitney Confidence Interval & Estimate: Problem Case")
    lower, upper, estimate = kayenta.mann_whitney_interval(arr(c["arrays"]["experiment"]),
                                                           arr(c["arrays"]["control"]), 0.98)
    assert lower == pytest.approx(-1.4808028936386108e-5, abs=E)
    assert upper == pytest.approx(1.808255910873413e-5, abs=E)
    assert estimate == pytest.approx(1.808255910873413e-5, abs=E)


@pytest.mark.parametrize(("name", "confidence"), [
    ("Mann-Whitney Confidence Interval & Estimate: Tie out with R Version", 0.95),
    ("Mann-Whitney Confidence Interval & Estimate: Tie out with R Version (Large)", 0.98)])
def test_kayenta_mannwhitney_suite_ties_out_with_r(name: str, confidence: float) -> None:
    c = _mw_case(name)
    v = c["values"]
    lower, upper, estimate = kayenta.mann_whitney_interval(arr(c["arrays"]["experiment"]),
                                                           arr(c["arrays"]["control"]), confidence)
    assert lower == pytest.approx(v["rCiLow"], abs=E)
    assert upper == pytest.approx(v["rCiHigh"], abs=E)
    assert estimate == pytest.approx(v["rEst"], abs=1e-4)


def test_kayenta_mannwhitney_suite_intermediate_values() -> None:
    c = _mw_case("Mann-Whitney Intermediate Values / Variables")
    v = c["values"]
    x, y = arr(c["arrays"]["x"]), arr(c["arrays"]["y"])
    mu_min, mu_max = float(x.min() - y.max()), float(x.max() - y.min())
    zq = -float(norm.ppf((1 - v["confidenceLevel"]) / 2))
    assert (mu_min, mu_max) == pytest.approx((v["rMumin"], v["rMumax"]), abs=E)
    assert (zq, -zq) == pytest.approx((v["rZqLower"], v["rZqUpper"]), abs=E)
    assert kayenta._wilcoxon_diff(mu_min, zq, x, y) == pytest.approx(v["rFlower1"], abs=E)
    assert kayenta._wilcoxon_diff(mu_max, zq, x, y) == pytest.approx(v["rFupper1"], abs=E)
    assert kayenta._wilcoxon_diff(mu_min, -zq, x, y) == pytest.approx(v["rFlower2"], abs=E)
    assert kayenta._wilcoxon_diff(mu_max, -zq, x, y) == pytest.approx(v["rFupper2"], abs=E)
    lower, upper, estimate = kayenta.mann_whitney_interval(x, y, v["confidenceLevel"])
    # with Brent's coarse tolerance on values of 1e-5 the "lower" root even lies above the upper, as in Kayenta
    assert (lower, upper) == pytest.approx((v["rCil"], v["rCiu"]), abs=E)
    assert estimate == pytest.approx(v["rEst"], abs=E)


@pytest.mark.parametrize("case", cases("detector"))
def test_kayenta_detector_suite(case: dict[str, Any]) -> None:
    if case["name"].startswith("KSigma"):
        pytest.skip("KSigmaDetector: the canary peer removes outliers with Kayenta's IQRDetector only")
    data = arr(case["arrays"]["testData"])
    truth = case["arrays"].get("truth")
    if truth is None:  # NIST: every value but the last is inside the fences
        truth = [False] * (len(data) - 1) + [True]
    assert kayenta.iqr_outliers(data, 1.5, reduce_sensitivity=False).tolist() == truth


@pytest.mark.parametrize("case", cases("transform"))
def test_kayenta_transform_suite(case: dict[str, Any]) -> None:
    name, a = case["name"], case["arrays"]
    data = arr(a.get("testData", []))
    if name.startswith("KSigma"):
        pytest.skip("KSigmaDetector: the canary peer removes outliers with Kayenta's IQRDetector only")
    if name == "Add Gaussian Noise":
        pytest.skip("addGaussianNoise as a transform: the peer adds noise only inside the classifier (tested there)")
    if name.startswith("Remove"):
        out = kayenta.transform(data, remove_outliers=False)
    elif name.startswith("Replace"):
        out = kayenta.transform(data, nan_strategy=kayenta.NanStrategy.REPLACE, remove_outliers=False)
    else:  # IQR outlier removal, factor 1.5 without reduced sensitivity
        out = data[~kayenta.iqr_outliers(data, 1.5, reduce_sensitivity=False)]
    assert out.tolist() == a["truth"]


def test_nan_strategy_parses_as_kayenta_does() -> None:
    assert kayenta.NanStrategy.parse("replace") is kayenta.NanStrategy.REPLACE
    assert kayenta.NanStrategy.parse("none") is kayenta.NanStrategy.REMOVE  # the default
    assert kayenta.NanStrategy.parse("remove") is kayenta.NanStrategy.REMOVE
