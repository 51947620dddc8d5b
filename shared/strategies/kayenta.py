"""Kayenta's NetflixACAJudge, reimplemented: metric transforms, the Mann-Whitney classifier, group scoring.

Sources (spinnaker/kayenta, ``kayenta-judge`` and ``kayenta-mannwhitney``):

* ``NetflixACAJudge.classifyMetric``: ``new MannWhitneyClassifier(tolerance = 0.25, confLevel = 0.98, ...)``;
  ``nanStrategy`` ``remove`` drops NaNs and ``replace`` turns them into 0; any other value, the default ``none``
  included, parses as ``remove`` (``NaNStrategy.parse``); outliers removed with
  ``IQRDetector(outlierFactor, reduceSensitivity = true)`` when ``outliers.strategy: remove`` (factor default 3.0);
  effect size ``meanRatio`` with ``allowedIncrease``/``allowedDecrease`` 1.0 by default; ``critical`` and
  ``mustHaveData`` per metric, with ``criticalIncrease``/``criticalDecrease`` effect sizes (default 1.0).
* ``IQRDetector``: fences at Q1 - factor·IQR and Q3 + factor·IQR; with ``reduceSensitivity`` the fences widen to
  the 1st/99th percentiles when those lie further out. Percentiles are R-7 (numpy's default).
* ``MannWhitneyClassifier``: no data is ``Nodata`` under ``remove`` (``NodataFailMetric`` when data is required
  and the metric is not critical) and ``Pass`` under ``replace``; identical samples pass; otherwise the
  two-sample Mann-Whitney (Wilcoxon rank-sum)
  confidence interval of the location shift canary - baseline, at ``confLevel``, with the Hodges-Lehmann
  estimate. *High* when (direction increase or either) the lower confidence bound exceeds
  ``tolerance · |estimate|`` and the mean ratio reaches ``allowedIncrease``; *Low* symmetrically.
* ``MannWhitney`` (kayenta-mannwhitney): a port of R's ``wilcox.test(conf.int = TRUE, exact = FALSE,
  correct = TRUE)``: normal approximation with ties correction and continuity correction, bounds by Brent's
  root finding with an absolute tolerance of 1e-4 (``BrentSolver.TOLERANCE``, as R's ``uniroot``), which is coarse
  for metrics of tiny magnitude, and Kayenta keeps it so.
* ``WeightedSumScorer``: a group's score is 100 · passing / (passing + high + low + nodata-fail) of its metrics
  (``Nodata`` and errors do not count); a group with no counted metric scores 0 but counts as 100 in the
  summary, which is the weighted sum of group scores (groups without weights share what the configured weights
  leave). A critical metric that does not pass, or ``Nodata`` on half the metrics or more, scores 0.
  ``ThresholdScoreClassifier``: pass at or above ``pass``, marginal at or above ``marginal``, else fail.

The project's tests port Kayenta's ``ScorerSuite``, ``ClassifierSuite``, ``DetectorSuite``, ``TransformSuite``
and ``MannWhitneySuite`` (tests/unit/test_kayenta_suites.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm, rankdata

TOLERANCE = 0.25
CONFIDENCE_LEVEL = 0.98
OUTLIER_FACTOR = 3.0
PASS_SCORE = 95.0
MARGINAL_SCORE = 75.0
BRENT_TOLERANCE = 1e-4
"""``BrentSolver.TOLERANCE`` of kayenta-mannwhitney: an absolute tolerance, as R's ``uniroot``."""
NODATA_THRESHOLD = 50.0
"""``WeightedSumScorer.NODATA_THRESHOLD``: this share (percent) of metrics without data or more fails."""


class NanStrategy(StrEnum):
    REMOVE = "remove"
    REPLACE = "replace"

    @classmethod
    def parse(cls, text: str) -> NanStrategy:
        """Kayenta's ``NaNStrategy.parse``: anything but ``replace`` (the default ``none`` too) is ``remove``."""
        return cls.REPLACE if text == "replace" else cls.REMOVE


class Direction(StrEnum):
    INCREASE = "increase"  # only a rise is bad
    DECREASE = "decrease"  # only a fall is bad
    EITHER = "either"


class Classification(StrEnum):
    PASS = "Pass"
    HIGH = "High"
    LOW = "Low"
    NODATA = "Nodata"
    NODATA_FAIL = "NodataFailMetric"
    ERROR = "Error"


@dataclass(frozen=True)
class MetricResult:
    name: str
    classification: Classification
    reason: str
    ratio: float
    group: str
    critical: bool = False


@dataclass(frozen=True)
class Judgement:
    score: float
    classification: str  # Pass | Marginal | Fail
    results: list[MetricResult] = field(default_factory=list)
    group_scores: dict[str, float] = field(default_factory=dict)

    def failing(self) -> list[MetricResult]:
        return [r for r in self.results if r.classification in (Classification.HIGH, Classification.LOW)]


def iqr_outliers(values: NDArray[np.float64], factor: float = OUTLIER_FACTOR,
                 reduce_sensitivity: bool = True) -> NDArray[np.bool_]:
    """Kayenta's ``IQRDetector``: True where a value lies outside the fences."""
    if values.size == 0:
        return np.zeros(0, dtype=bool)
    q1, q3 = np.percentile(values, [25, 75])
    lower, upper = q1 - factor * (q3 - q1), q3 + factor * (q3 - q1)
    if reduce_sensitivity:
        p01, p99 = np.percentile(values, [1, 99])
        lower, upper = min(p01, lower), max(p99, upper)
    out: NDArray[np.bool_] = (values > upper) | (values < lower)
    return out


def transform(values: NDArray[np.float64], factor: float = OUTLIER_FACTOR,
              nan_strategy: NanStrategy = NanStrategy.REMOVE, remove_outliers: bool = True) -> NDArray[np.float64]:
    """``handleNaNs`` (remove, or replace by 0) then, when asked, ``outliers: {strategy: remove}``."""
    kept = values[~np.isnan(values)] if nan_strategy is NanStrategy.REMOVE else np.nan_to_num(values, nan=0.0)
    if not remove_outliers:
        return kept
    out: NDArray[np.float64] = kept[~iqr_outliers(kept, factor)]
    return out


def _wilcoxon_diff(mu: float, quantile: float, x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    nx, ny = float(len(x)), float(len(y))
    ranks = rankdata(np.concatenate([x - mu, y]))
    _, ties = np.unique(ranks, return_counts=True)
    dz = float(ranks[: len(x)].sum()) - nx * (nx + 1) / 2 - nx * ny / 2
    correction = math.copysign(0.5, dz) if dz != 0 else 0.0
    sigma = math.sqrt((nx * ny / 12) * ((nx + ny + 1) - float(np.sum(ties.astype(float) ** 3 - ties))
                                        / ((nx + ny) * (nx + ny - 1))))
    if sigma == 0:
        raise ValueError("cannot compute a confidence interval when all observations are tied")
    return (dz - correction) / sigma - quantile


def zeroin(f: Callable[[float], float], ax: float, bx: float, fa: float, fb: float,
           tol: float = BRENT_TOLERANCE, max_iterations: int = 1000) -> float:
    """Brent's root finder as R's ``zeroin`` (Brent, *Algorithms for Minimization without Derivatives*, 1973, ch. 4),
    which kayenta-mannwhitney's ``BrentSolver`` follows with the same tolerance. With an absolute tolerance of 1e-4
    the root of a metric of tiny magnitude is wherever the first steps land, so the steps must be Brent's own
    (scipy's ``brentq`` takes others) for the port to classify as Kayenta does.
    """
    eps = float(np.finfo(float).eps)
    a, b, c, fc = ax, bx, ax, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(max_iterations):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * eps * abs(b) + tol / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:  # secant
                t1 = fb / fa
                p, q = cb * t1, 1.0 - t1
            else:  # inverse quadratic interpolation
                q, t1, t2 = fa / fc, fb / fc, fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0:
                q = -q
            else:
                p = -p
            if p < 0.75 * cb * q - abs(tol_act * q) / 2 and p < abs(prev_step * q / 2):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b


def mann_whitney_interval(x: NDArray[np.float64], y: NDArray[np.float64],
                          confidence: float = CONFIDENCE_LEVEL) -> tuple[float, float, float]:
    """(lower, upper, Hodges-Lehmann estimate) of the location shift x - y, as kayenta-mannwhitney computes it."""
    lo_mu, hi_mu = float(x.min() - y.max()), float(x.max() - y.min())

    def root(q: float) -> float:
        f_lo, f_hi = _wilcoxon_diff(lo_mu, q, x, y), _wilcoxon_diff(hi_mu, q, x, y)
        if f_lo <= 0:
            return lo_mu
        if f_hi >= 0:
            return hi_mu
        return zeroin(lambda mu: _wilcoxon_diff(mu, q, x, y), lo_mu, hi_mu, f_lo, f_hi)

    z = float(norm.ppf((1 - confidence) / 2))  # negative
    return root(-z), root(z), root(0.0)


def _noise(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Kayenta adds Gaussian noise (1e-5 of the value) when both samples are constant."""
    rng = np.random.default_rng(len(values))
    return values + rng.normal(0.0, abs(float(values[0])) * 1e-5, len(values))


def classify(name: str, control: NDArray[np.float64], experiment: NDArray[np.float64], direction: Direction,
             group: str, *, tolerance: float = TOLERANCE, confidence: float = CONFIDENCE_LEVEL,
             allowed_increase: float = 1.0, allowed_decrease: float = 1.0,
             nan_strategy: NanStrategy = NanStrategy.REMOVE, critical: bool = False, data_required: bool = False,
             critical_increase: float = 1.0, critical_decrease: float = 1.0) -> MetricResult:
    """Kayenta's ``MannWhitneyClassifier.classify`` on already transformed samples."""
    if experiment.size == 0 or control.size == 0:
        if nan_strategy is NanStrategy.REPLACE:
            return MetricResult(name, Classification.PASS, f"no data for {name} (nanStrategy replace)", 1.0, group)
        if data_required and not critical:
            return MetricResult(name, Classification.NODATA_FAIL, f"missing data for {name}", 1.0, group)
        return MetricResult(name, Classification.NODATA, f"missing data for {name}", 1.0, group, critical)
    if np.array_equal(np.sort(experiment), np.sort(control)):
        return MetricResult(name, Classification.PASS, "canary and baseline data are identical", 1.0, group)
    if np.unique(np.concatenate([experiment, control])).size == 1:
        return MetricResult(name, Classification.PASS, "a single value throughout", 1.0, group)
    x, y = experiment, control
    if np.unique(x).size == 1 and np.unique(y).size == 1:
        x, y = _noise(x), _noise(y)
    try:
        lower, upper, estimate = mann_whitney_interval(x, y, confidence)
    except ValueError as exc:
        return MetricResult(name, Classification.ERROR, str(exc), 1.0, group)
    cm, em = float(np.mean(y)), float(np.mean(x))
    ratio = em / cm if cm != 0 and em != 0 else math.nan
    bound = tolerance * abs(estimate)
    detail = (f"{name}: canary mean {em:.3g} vs baseline {cm:.3g}, shift {estimate:+.3g} "
              f"({confidence:.0%} CI {lower:+.3g}..{upper:+.3g}, bound ±{bound:.3g})")
    high = (direction in (Direction.INCREASE, Direction.EITHER) and lower > bound
            and (math.isnan(ratio) or ratio >= allowed_increase))
    low = (direction in (Direction.DECREASE, Direction.EITHER) and upper < -bound
           and (math.isnan(ratio) or ratio <= allowed_decrease))
    if high:
        crit = critical and (math.isnan(ratio) or ratio >= critical_increase)
        return MetricResult(name, Classification.HIGH, f"{detail}: High" + (" (critical)" if crit else ""), ratio,
                            group, crit)
    if low:
        crit = critical and (math.isnan(ratio) or ratio <= critical_decrease)
        return MetricResult(name, Classification.LOW, f"{detail}: Low" + (" (critical)" if crit else ""), ratio,
                            group, crit)
    return MetricResult(name, Classification.PASS, detail, ratio, group)


def score(results: Sequence[MetricResult], weights: Mapping[str, float] | None = None,
          pass_score: float = PASS_SCORE, marginal_score: float = MARGINAL_SCORE) -> Judgement:
    """``WeightedSumScorer`` and ``ThresholdScoreClassifier``."""
    weights = dict(weights or {})
    groups: dict[str, list[MetricResult]] = {}
    for r in results:
        groups.setdefault(r.group, []).append(r)
    counted = (Classification.PASS, Classification.HIGH, Classification.LOW, Classification.NODATA_FAIL)
    group_scores: dict[str, float] = {}
    nodata: set[str] = set()
    for g, rs in groups.items():
        total = sum(1 for r in rs if r.classification in counted)
        if total == 0:
            nodata.add(g)
            group_scores[g] = 0.0
        else:
            group_scores[g] = 100.0 * sum(1 for r in rs if r.classification is Classification.PASS) / total
    critical = [r for r in results if r.critical and r.classification is not Classification.PASS]
    missing = sum(1 for r in results if r.classification is Classification.NODATA)
    if critical or (results and 100.0 * missing / len(results) >= NODATA_THRESHOLD):
        return Judgement(0.0, "Fail", list(results), group_scores)
    unweighted = [g for g in groups if g not in weights]
    share = (100.0 - sum(weights.values())) / len(unweighted) if unweighted else 0.0
    summary = sum((100.0 if g in nodata else group_scores[g]) * weights.get(g, share) / 100.0 for g in groups)
    summary = round(summary + 0.0, 2)
    label = "Pass" if summary >= pass_score else "Marginal" if summary >= marginal_score else "Fail"
    return Judgement(summary, label, list(results), group_scores)
