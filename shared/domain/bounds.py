"""How sure the shadows make us of a failure rate: one bound function that every decision uses.

``k`` failing shadows of ``n`` changed ones say little when ``n`` is small: 0 of 2 does not show a rate below
2%, and 1 of 2 does not show a rate of 50%. The decisions therefore act on a bound, not on ``k / n``: skip or
halt when even the *lower* bound exceeds the tolerable rate, proceed when the *upper* bound is below it, and
call everything in between ambiguous.

The bound is the exact (Clopper-Pearson) binomial interval, each side one-sided at ``confidence``:
``lower = Beta⁻¹(1 - c; k, n - k + 1)`` and ``upper = Beta⁻¹(c; k + 1, n - k)`` (Clopper and Pearson,
Biometrika 26, 1934; with ``k = 0`` the upper bound is ``1 - (1 - c)^(1/n)``, ≈ 3/n at 95%: the "rule of
three"). It is conservative (coverage at least ``c`` for every true rate), which is the side a rollout should
err on. Callers go through :func:`failure_rate_bound` only, so that there is one halt rule.

Anytime-valid as used (issue #14): the bake now looks every couple of minutes and may end at any look. The bound
stays valid under that peeking because of what it counts: the trials are the shadows, fixed before the change,
and a shadow's failure is absorbing (an apply failure, a failed health rule, or its stratum shown harmed by the
sequential e-processes of :mod:`shared.domain.sequential`, never taken back). The failure count only grows, and the
lower bound grows with it, so "the lower bound exceeded the rate at some look before the end" is the same event as
"it exceeds it at the end": the error rate of the fixed-sample bound at the maximum bake. The signals, whose
peeking would inflate a fixed-sample test, are judged by the e-processes (Ville's inequality), which feed this
count. A mixture (beta-binomial) confidence sequence would be valid without that argument, but it is wider at
two shadows: 1 apply failure of 2 would no longer skip a stratum, and issue #13 asks that a seen failure never be
let through. (Shadows added to ambiguous strata make the trials data-dependent; those strata are flagged
ambiguous and snapshotted ahead whatever the bound then says.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RateBound:
    """A failure rate's one-sided bounds from ``failures`` of ``trials``, each holding with ``confidence``."""

    failures: int
    trials: int
    lower: float
    upper: float
    confidence: float

    def describe(self) -> str:
        return (f"{self.failures}/{self.trials} failing, rate in [{self.lower:.3f}, {self.upper:.3f}] "
                f"({self.confidence:.0%} one-sided each)")


def clopper_pearson(failures: int, trials: int, confidence: float) -> RateBound:
    """Exact one-sided binomial bounds; no trials bound nothing (``[0, 1]``)."""
    if trials < 0 or failures < 0 or failures > trials:
        raise ValueError(f"need 0 <= failures <= trials (got {failures} of {trials})")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1) (got {confidence})")
    if trials == 0:
        return RateBound(0, 0, 0.0, 1.0, confidence)
    from scipy.stats import beta  # imported when a decision is made, not at the app's start-up

    lower = 0.0 if failures == 0 else float(beta.ppf(1.0 - confidence, failures, trials - failures + 1))
    upper = 1.0 if failures == trials else float(beta.ppf(confidence, failures + 1, trials - failures))
    return RateBound(failures, trials, lower, upper, confidence)


def failure_rate_bound(failures: int, trials: int, confidence: float) -> RateBound:
    """The one bound every decision uses (see the module docstring); swap its body, not its callers."""
    return clopper_pearson(failures, trials, confidence)


def shadows_needed(rate: float, confidence: float) -> int:
    """Failure-free shadows needed before the upper bound falls below ``rate`` (rule of three at 95%)."""
    if not 0.0 < rate < 1.0:
        raise ValueError(f"rate must be in (0, 1) (got {rate})")
    return math.ceil(math.log(1.0 - confidence) / math.log(1.0 - rate))


def surprise_p_value(failures: int, trials: int, expected_rate: float) -> float:
    """P(at least ``failures`` of ``trials`` fail) when each fails with ``expected_rate``: a binomial tail.

    It is the dual of :func:`clopper_pearson`'s lower bound: the tail is below ``1 - c`` exactly when the lower
    bound at confidence ``c`` exceeds ``expected_rate``, so the production test is the same rule as the shadows'."""
    if failures <= 0:
        return 1.0
    if expected_rate <= 0.0:
        return 0.0
    from scipy.stats import binom  # imported when a decision is made, not at the app's start-up

    return float(binom.sf(failures - 1, trials, expected_rate))
