"""The statistical judge: does a stratum's shadow look worse after the change than before it?

A paired design: each shadow's post-change window is compared with its own pre-change baseline, pooled over
the stratum's shadows, one signal at a time (one-sided Mann-Whitney U, Bonferroni over the signals, a
relative tolerance as in Kayenta). Memory gets a trend test as well, because a slow leak may not yet move
the median within the bake but will exhaust memory later. Like an Argo analysis run, the verdict takes the
worst signal's phase, and a signal without enough data is Inconclusive, not a failure.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, cast

import numpy as np

from .bounds import surprise_p_value
from .health import Baseline, Baselines, failing_vms
from .model import ApplyResult, ApplyStatus, SignalFrame
from .policy import RolloutPolicy


class Phase(StrEnum):
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


# (signal, direction in which it gets worse, floor of the denominator of the relative change)
JUDGED_SIGNALS: tuple[tuple[str, int, float], ...] = (
    ("cpu_pct", +1, 5.0),
    ("mem_available_pct", -1, 5.0),
    ("net_bytes", -1, 1.0),
    ("error_count", +1, 1.0),
    ("health_ok", -1, 0.05),
)
MIN_SAMPLES = 5
LEAK_T_STAT = -6.0
FLEET_SUPPORT_P = 0.05
PASSING_SCORE_CAP = 0.05
"""A passing stratum's score grows with its strongest (sub-threshold) evidence, up to this cap."""


@dataclass(frozen=True)
class SignalVerdict:
    signal: str
    phase: Phase
    p_value: float
    relative_change: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "phase": self.phase.value, "p_value": self.p_value,
                "relative_change": self.relative_change, "message": self.message}


@dataclass(frozen=True)
class StratumVerdict:
    stratum_key: str
    label: str
    phase: Phase
    score: float | None
    reason: str
    shadows_observed: int
    signals: list[SignalVerdict] = field(default_factory=list)
    shadows_changed: int = 0
    shadows_failed: int = 0
    """Changed shadows that failed: an apply failure, the project's health rules, or all of them when the
    stratum failed on a signal (the failure-rate bound in the decisions counts these)."""

    def to_dict(self) -> dict[str, Any]:
        return {"stratum_key": self.stratum_key, "label": self.label, "phase": self.phase.value,
                "score": self.score, "reason": self.reason, "shadows_observed": self.shadows_observed,
                "signals": [s.to_dict() for s in self.signals], "shadows_changed": self.shadows_changed,
                "shadows_failed": self.shadows_failed}


def judge_stratum(
    stratum_key: str,
    label: str,
    baseline: SignalFrame,
    post: SignalFrame,
    applies: list[ApplyResult],
    policy: RolloutPolicy,
    control: tuple[SignalFrame, SignalFrame] | None = None,
) -> StratumVerdict:
    """Judge one stratum from its shadows' baseline and post-change windows (same VM rows).

    ``control`` holds the same two windows of untouched twins: a shift they show too is the environment's
    (a load generator warming up, a noisy host), not the change's, and is subtracted before the tolerance.
    The verdict also counts the changed shadows that failed, for the decisions' failure-rate bound.
    """
    verdict = _judge_stratum(stratum_key, label, baseline, post, applies, policy, control)
    failed = {a.vm_id for a in applies if a.status is not ApplyStatus.OK}
    if verdict.phase is Phase.FAILED:
        failing = len(applies)
    elif post.vm_ids and post.width:
        rows = [v for v in post.vm_ids if v not in failed]
        frame = post.rows(rows) if rows else None
        base = baseline.rows(rows) if rows and baseline.width else None
        baselines: Baselines | dict[str, Baseline] = {}
        if base is not None:  # each shadow's own pre-change rates, as columns in the frame's row order
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                baselines = Baselines(np.nanmean(base.signals["error_count"], axis=1),
                                      np.nanmean(base.signals["cpu_pct"], axis=1))
        health_failing = failing_vms(frame, baselines, [], policy) if frame is not None else {}
        failing = len(failed) + len(health_failing)
    else:
        failing = len(failed)
    return replace(verdict, shadows_changed=len(applies), shadows_failed=min(failing, len(applies)))


def _judge_stratum(stratum_key: str, label: str, baseline: SignalFrame, post: SignalFrame,
                   applies: list[ApplyResult], policy: RolloutPolicy,
                   control: tuple[SignalFrame, SignalFrame] | None) -> StratumVerdict:
    failed = [a for a in applies if a.status is not ApplyStatus.OK]
    observed = _observed_rows(post)
    alpha = policy.judge_alpha / len(JUDGED_SIGNALS)
    verdicts: list[SignalVerdict] = []
    if observed and applies:
        verdicts = [_judge_signal(name, direction, floor, baseline, post, alpha, policy, control)
                    for name, direction, floor in JUDGED_SIGNALS]
        verdicts.append(_judge_memory_trend(post, policy))
        verdicts.append(_judge_probe_rate(baseline, post, alpha, policy, control))
    if failed:
        detail = ", ".join(sorted({f"{a.status.value} (exit {a.exit_code})" for a in failed}))
        return StratumVerdict(stratum_key, label, Phase.FAILED, 1.0,
                              f"apply {detail} on {len(failed)}/{len(applies)} shadows of stratum {label}",
                              len(applies), verdicts)
    if observed == 0 or not applies:
        return StratumVerdict(stratum_key, label, Phase.INCONCLUSIVE, None,
                              f"no shadow of stratum {label} was observed through the bake", 0)
    failing = [v for v in verdicts if v.phase is Phase.FAILED]
    if failing:
        worst = min(failing, key=lambda v: v.p_value)
        strength = min(1.0, -math.log10(max(worst.p_value, 1e-12)) / 12.0)
        reason = f"stratum {label}: " + "; ".join(v.message for v in failing)
        return StratumVerdict(stratum_key, label, Phase.FAILED, round(0.9 + 0.1 * strength, 4), reason,
                              observed, verdicts)
    conclusive = [v for v in verdicts if v.phase is Phase.SUCCESSFUL]
    if not conclusive:
        return StratumVerdict(stratum_key, label, Phase.INCONCLUSIVE, None,
                              f"stratum {label}: too few samples on every signal", observed, verdicts)
    best_p = min(v.p_value for v in conclusive)
    score = round(PASSING_SCORE_CAP * min(1.0, -math.log10(max(best_p, 1e-12)) / -math.log10(alpha)), 4)
    return StratumVerdict(stratum_key, label, Phase.SUCCESSFUL, score,
                          f"stratum {label}: no signal worse than baseline beyond tolerance "
                          f"{policy.judge_tolerance:g} at alpha {alpha:.2g} ({observed} shadows)",
                          observed, verdicts)


def _observed_rows(frame: SignalFrame) -> int:
    health = frame.signals["health_ok"]
    return int(np.sum(np.any(~np.isnan(health), axis=1))) if health.size else 0


def _samples(frame: SignalFrame, name: str) -> np.ndarray:
    values = frame.signals[name].ravel()
    kept: np.ndarray = values[~np.isnan(values)]
    return kept


def _centre(name: str, values: np.ndarray) -> float:
    return float(np.mean(values)) if name in ("health_ok", "error_count") else float(np.median(values))


@functools.cache
def _mann_whitney_u() -> Callable[..., Any]:
    """SciPy's test, imported at the first bake (half of the app's import time) and looked up once: an import
    statement in the per-signal path took a tenth of the judge's time at 10,000 VMs."""
    from scipy.stats import mannwhitneyu

    return cast(Callable[..., Any], mannwhitneyu)


def _judge_signal(name: str, direction: int, floor: float, baseline: SignalFrame, post: SignalFrame,
                  alpha: float, policy: RolloutPolicy,
                  control: tuple[SignalFrame, SignalFrame] | None) -> SignalVerdict:
    before, after = _samples(baseline, name), _samples(post, name)
    if before.size < MIN_SAMPLES or after.size < MIN_SAMPLES:
        return SignalVerdict(name, Phase.INCONCLUSIVE, 1.0, 0.0,
                             f"{name}: {before.size} baseline / {after.size} post samples < {MIN_SAMPLES}")
    centre_before, centre_after = _centre(name, before), _centre(name, after)
    rel = (centre_after - centre_before) / max(abs(centre_before), floor)
    twin_rel = 0.0
    if control is not None:
        c_before, c_after = _samples(control[0], name), _samples(control[1], name)
        if c_before.size >= MIN_SAMPLES and c_after.size >= MIN_SAMPLES:
            cb = _centre(name, c_before)
            twin_rel = (_centre(name, c_after) - cb) / max(abs(cb), floor)
    if np.all(before == before[0]) and np.all(after == after[0]):
        p = 0.0 if (after[0] - before[0]) * direction > 0 else 1.0
    else:
        alternative = "greater" if direction > 0 else "less"
        p = float(_mann_whitney_u()(after, before, alternative=alternative).pvalue)
    effect = rel - twin_rel
    worse = effect * direction > policy.judge_tolerance
    phase = Phase.FAILED if (p < alpha and worse) else Phase.SUCCESSFUL
    verb = "rose" if rel > 0 else "fell"
    twins = f", twins {twin_rel:+.0%}" if twin_rel else ""
    msg = (f"{name} {verb} {abs(rel):.0%} ({centre_before:.3g} -> {centre_after:.3g}{twins}), "
           f"p {p:.2g} {'<' if p < alpha else '>='} {alpha:.2g}")
    return SignalVerdict(name, phase, p, effect, msg)


def _judge_probe_rate(baseline: SignalFrame, post: SignalFrame, alpha: float, policy: RolloutPolicy,
                      control: tuple[SignalFrame, SignalFrame] | None) -> SignalVerdict:
    """Fail when the shadows' probe-failure rate is significantly above what is tolerable and what was normal.

    The relative test above cannot see a flap that fails a few percent of probes (a 5% drop of a signal near
    1 is far below any relative tolerance); this one asks whether the failed probes after the change are
    too many for ``max(probe_failure_tolerance, the baseline's rate, the untouched twins' rate)``, by a
    binomial tail. ``relative_change`` holds the absolute excess rate.
    """
    after = _samples(post, "health_ok")
    if after.size < MIN_SAMPLES:
        return SignalVerdict("health_rate", Phase.INCONCLUSIVE, 1.0, 0.0,
                             f"health_rate: {after.size} post samples < {MIN_SAMPLES}")
    failed = int(np.sum(after == 0.0))
    normal = [policy.probe_failure_tolerance]
    for frame in (baseline, *(control or ())):
        seen = _samples(frame, "health_ok")
        if seen.size >= MIN_SAMPLES:
            normal.append(float(np.mean(seen == 0.0)))
    expected = max(normal)
    rate = failed / after.size
    p = surprise_p_value(failed, int(after.size), expected)
    phase = Phase.FAILED if p < alpha else Phase.SUCCESSFUL
    msg = (f"health probes failed {failed}/{after.size} = {rate:.1%} against an expected {expected:.1%}, "
           f"p {p:.2g} {'<' if p < alpha else '>='} {alpha:.2g}")
    return SignalVerdict("health_rate", phase, p, rate - expected, msg)


def _judge_memory_trend(post: SignalFrame, policy: RolloutPolicy) -> SignalVerdict:
    """Fail when any shadow's available memory falls steadily enough to run out within the projection."""
    mem = post.signals["mem_available_pct"]
    worst: SignalVerdict | None = None
    steepest = 0.0
    for row in mem:
        ok = ~np.isnan(row)
        if ok.sum() < MIN_SAMPLES * 2:
            continue
        x = np.nonzero(ok)[0].astype(float)
        y = row[ok]
        xc = x - x.mean()
        sxx = float(np.sum(xc * xc))
        slope = float(np.sum(xc * (y - y.mean())) / sxx)
        resid = y - (y.mean() + slope * xc)
        se = math.sqrt(max(float(np.sum(resid * resid)) / max(len(y) - 2, 1), 1e-12) / sxx)
        t = slope / se
        level = float(y[-3:].mean())
        steepest = min(steepest, slope)
        minutes_left = level / -slope if slope < 0 else math.inf
        if t < LEAK_T_STAT and minutes_left < policy.memory_projection_minutes:
            msg = (f"available memory falls {-slope:.3g} %/min (t {t:.1f}), exhausted in "
                   f"{minutes_left:.0f} min < {policy.memory_projection_minutes} min")
            v = SignalVerdict("mem_trend", Phase.FAILED, 1e-9, slope, msg)
            if worst is None or v.relative_change < worst.relative_change:
                worst = v
    return worst or SignalVerdict("mem_trend", Phase.SUCCESSFUL, 1.0, steepest,
                                  f"no memory exhaustion projected (steepest slope {steepest:.3g} %/min)")


def apply_fleet_evidence(verdicts: dict[str, StratumVerdict], fleet: StratumVerdict,
                         policy: RolloutPolicy) -> dict[str, StratumVerdict]:
    """Let pooled evidence decide strata that point the same way but are too small to be significant alone.

    ``fleet`` judges all treated shadows together. Where it fails a signal, a stratum whose own effect on that
    signal is worse than the tolerance in the same direction, and at least nominally significant
    (p < FLEET_SUPPORT_P, no correction), fails too: a fleet-wide shift that each pair of shadows shows only
    faintly is still the change's. A stratum without that effect keeps its own verdict.
    """
    failing = {v.signal: v for v in fleet.signals if v.phase is Phase.FAILED and v.signal != "mem_trend"}
    if not failing:
        return verdicts
    directions = {name: direction for name, direction, _ in JUDGED_SIGNALS}
    out = dict(verdicts)

    def worse(s: SignalVerdict) -> bool:
        if s.signal == "health_rate":  # an absolute excess rate: any excess in the same direction agrees
            return s.relative_change > 0.0
        return s.relative_change * directions[s.signal] > policy.judge_tolerance

    for key, v in verdicts.items():
        if v.phase is not Phase.SUCCESSFUL:
            continue
        agree = [s for s in v.signals if s.signal in failing and s.p_value < FLEET_SUPPORT_P and worse(s)]
        if not agree:
            continue
        detail = "; ".join(f"{s.signal} {s.relative_change:+.0%} here, fleet-wide {failing[s.signal].message}"
                           for s in agree)
        out[key] = StratumVerdict(key, v.label, Phase.FAILED, 0.9,
                                  f"stratum {v.label}: consistent with fleet-wide evidence over "
                                  f"{fleet.shadows_observed} shadows: {detail}", v.shadows_observed, v.signals,
                                  v.shadows_changed, v.shadows_changed)
    return out
