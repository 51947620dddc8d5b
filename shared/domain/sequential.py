"""An anytime-valid bake: per stratum and signal, stop as soon as harm is shown or its absence is, never peeking wrong.

Why sequential: the bake is checked every couple of minutes. A fixed-sample test checked that often inflates its
false-alarm rate with every look; a test martingale (an e-process) does not. By Ville's inequality a nonnegative
supermartingale with initial value 1 ever reaches 1/a with probability at most a, so the bake may stop at the first
look whose evidence suffices, or run on into the production waves, with its error rates still controlled.

The method, per stratum and signal
----------------------------------
Increments ``x`` are oriented changes of a shadow against its own pre-change centre (positive = worse), relative
to that centre like the judge's, minus the median over every running untouched control twin of what it showed
over the same minutes (the environment's shift), see :func:`oriented_changes`. With ``n`` increments summing to
``T`` and a scale ``s``:

* **harm** tests H0: mean <= m (the signal's harm margin) with ``S = (T - n m) / s``;
* **no harm** tests H0: mean >= d (its tolerable effect) with ``S = (n d - T) / s``.

Each uses the one-sided normal-mixture e-process of Robbins (1970) as in Howard, Ramdas, McAuliffe and Sekhon,
"Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2), 2021 (arXiv:1810.08240),
and as in the mixture SPRT of Johari, Koomen, Pekelis and Walsh, "Always valid inference: continuous monitoring of
A/B tests", Operations Research 70(3), 2022: mixing ``exp(l S - l^2 n / 2)`` over ``l >= 0`` with a half-normal
density of scale ``1 / sqrt(r)`` gives, in closed form,

    E = 2 sqrt(r / (n + r)) exp(S^2 / (2 (n + r))) Phi(S / sqrt(n + r)),

a nonnegative supermartingale under H0 for 1-sub-Gaussian standardised increments (each mixed term is one). The
scale ``s`` is a plug-in (Johari et al. justify plug-in variances asymptotically): the pooled within-window
variance of the pre-change minutes and of the increments so far, never below the increments' own, floored per
signal so that a quiet signal is not trusted to a precision it has not shown. Increments are clipped at
``clip_sd`` baseline scales, which bounds a benign spike's weight. Probe signals (:data:`ABSOLUTE_CENTRES`: the
health probe) need none of this: their increments are failed probes, tested with exact Bernoulli likelihood-ratio
mixtures on the absolute failure rate.

What is exact and what is not: for the probe signals the guarantee is Ville's, exactly. For the others it rests
on the plug-in scale and on a shadow's minutes being independent given its centre; benign spikes last a few
minutes and metrics have gaps, so the error rates below are also measured, on the simulator's own signal models
(:mod:`shared.bench.sequential_oc`), not only asserted.

The pre-change centre each increment is measured from is itself estimated, from few minutes: its error is a bias
shared by every later increment of that shadow, which no martingale argument removes. So each error budget is
split in two: half bounds that bias (a normal quantile of the centre's standard error widens the harm margin and
narrows the tolerable effect, fixed at the start), half goes to the e-process.

The harm test restarts: fresh e-processes begin at the design's ``harm_restarts`` (0, 10, 20, 30, 45 and 60
minutes) and are mixed with equal weights, which is a test supermartingale too (each is 1 until it starts). An
effect whose onset comes at minute 20 is then judged on the minutes after 20, not diluted by the clean ones
before; an effect present from the start pays log(6) in evidence for it.

Error rates, stated (and measured by simulation in ``tests/unit/test_sequential.py`` and reported by
:mod:`shared.bench.sequential_oc`):

* a stratum whose signals are no worse than their harm margins is declared harmed with probability at most
  ``alpha`` over the whole monitoring, however often it is checked (Bonferroni over the signals: each at
  ``alpha / k``);
* a stratum with a signal worse by its tolerable effect or more is declared free of harm with probability at most
  ``beta`` (no correction: "no harm" needs every signal to show it, so the harmful one alone must err).

A shadow's minutes are not independent when a benign burst (a cron job, a garbage collection, a deploy of
something else) lifts several of them at once: clipped at ``clip_sd`` scales, a burst of four minutes on a
stratum's only shadow reads as four equal, maximal increments, whose own spread is nil, and crosses any level. Two
shadows dilute it (the other's minutes widen the spread), one cannot. So where a stratum's evidence rests on one
shadow, a harm crossing on a signal with an estimated centre is only *pending*: it becomes harm when, over the
next ``transient_minutes``, the majority of that signal's increments stay above the harm margin (a sign test
that a burst which has ended fails, and an effect that persists passes), and is dismissed otherwise. An extra
condition on a rejection can only lower the false-alarm rate, so the bound above still holds; the cost is a later
detection on one-shadow strata (bench/results/sequential.json, ``rows`` 1).

Between the margin and the tolerable effect neither error is defined; such a stratum may end either way or
inconclusive at the maximum bake, which the caller treats as doubt (more, smaller waves; see
:mod:`shared.domain.waves`). Harm may be declared at any look; no harm only from the minimum bake on, because an
effect with a later onset cannot have shown before it. After "no harm" the harm test keeps running for as long as
the shadows are watched (their lead over production), and may still turn the verdict to harm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .model import SignalFrame
from .policy import RolloutPolicy

FloatArray = NDArray[np.float64]
UNKNOWN_CENTRE_SE = 1e6

SIGNAL_ORIENTATION: dict[str, tuple[int, float, bool]] = {
    "cpu_pct": (+1, 5.0, False),
    "mem_available_pct": (-1, 5.0, False),
    "net_bytes": (-1, 1.0, False),
    "error_count": (+1, 1.0, True),
    "health_ok": (-1, 0.05, True),
}
"""Per signal: the direction in which it gets worse, the floor of a relative change's denominator, and whether its
centre is a mean (counts and rates) rather than a median. The same table as the judge's (``JUDGED_SIGNALS``)."""
ABSOLUTE_CENTRES: dict[str, float] = {"health_ok": 1.0}
"""Bernoulli signals judged against a fixed centre, not their own past: a health probe's is 1 (every probe
passes), so its increment is a failed probe (0 or 1) and its tests are on the absolute probe-failure rate
(issue #13): exact Bernoulli likelihood-ratio mixtures, no centre to estimate, no plug-in scale, no twin shift."""
BERNOULLI_GRID = 12
"""Alternatives mixed (equal weights, geometric spacing) in a Bernoulli signal's e-processes."""


class SeqVerdict(StrEnum):
    CONTINUE = "continue"
    HARM = "harm"
    NO_HARM = "no_harm"
    INCONCLUSIVE = "inconclusive"


class SignalLimits(BaseModel):
    """What counts as harm for one signal, in relative change (oriented: positive = worse)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    harm_margin: float = Field(ge=0.0, description="A shift no larger than this is not harm (environmental drift).")
    tolerable: float = Field(gt=0.0, description="The effect the policy tolerates: 'no harm' means below it.")
    min_sd: float = Field(gt=0.0, description="Floor of the plug-in scale of one increment.")

    @model_validator(mode="after")
    def _check(self) -> SignalLimits:
        if self.harm_margin >= self.tolerable:
            raise ValueError("harm_margin must be below tolerable")
        return self


DEFAULT_LIMITS: dict[str, SignalLimits] = {
    "cpu_pct": SignalLimits(harm_margin=0.05, tolerable=0.25, min_sd=0.03),
    "mem_available_pct": SignalLimits(harm_margin=0.05, tolerable=0.25, min_sd=0.03),
    "net_bytes": SignalLimits(harm_margin=0.05, tolerable=0.25, min_sd=0.03),
    "error_count": SignalLimits(harm_margin=0.10, tolerable=1.0, min_sd=0.10),
    "health_ok": SignalLimits(harm_margin=0.01, tolerable=0.10, min_sd=0.10),
}
"""Relative shifts of 5% (CPU, memory, network) are within a day's drift; the tolerable 25% is Kayenta's tolerance
(the judge's ``judge_tolerance``). Error counts are Poisson-noisy per minute (about 1.4 a minute here), so their
centre is known only roughly from a few pre-change minutes: a doubling of the error rate is tolerable. Health is
judged on its absolute probe-failure rate: a probe failing 1% of the time is noise; "no harm" claims under 10%,
which two shadows can show within half an hour (showing under 5%, the rate issue #13 asks never to miss fleet-wide,
takes about 60 clean probes by the rule of three: the fleet's pooled shadows, not one stratum's)."""


class SequentialDesign(BaseModel):
    """The sequential bake's knobs; :meth:`from_policy` derives them from a rollout policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(0.01, gt=0.0, lt=0.5, description="False-alarm probability per stratum, whole watch.")
    beta: float = Field(0.05, gt=0.0, lt=0.5, description="Probability of 'no harm' when a signal is harmful.")
    min_bake_minutes: float = Field(10.0, ge=0.0, description="'No harm' is not declared before this.")
    max_bake_minutes: float = Field(30.0, gt=0.0, description="Undecided at this point: inconclusive.")
    check_minutes: float = Field(2.0, gt=0.0, description="Interval between looks.")
    mixture_sd: float = Field(2.0, gt=0.0, description="Scale of the half-normal mixing density (standardised).")
    clip_sd: float = Field(10.0, gt=0.0, description="Increments are clipped at this many baseline scales.")
    min_increments: int = Field(4, ge=1, description="A signal with fewer increments decides nothing.")
    transient_minutes: float = Field(
        8.0, ge=0.0, description="Harm resting on one shadow must persist this long after its crossing (benign "
                                 "bursts last minutes); 0: harm at the crossing.")
    harm_restarts: tuple[float, ...] = Field(
        (0.0, 10.0, 20.0, 30.0, 45.0, 60.0), min_length=1,
        description="Minutes at which a fresh harm e-process starts; mixed with equal weights (late onsets).")
    limits: dict[str, SignalLimits] = Field(default_factory=lambda: dict(DEFAULT_LIMITS))

    @model_validator(mode="after")
    def _check(self) -> SequentialDesign:
        if self.min_bake_minutes > self.max_bake_minutes:
            raise ValueError("min_bake_minutes must be <= max_bake_minutes")
        if not self.limits:
            raise ValueError("limits must name at least one signal")
        r = self.harm_restarts
        if r[0] != 0.0 or any(b <= a for a, b in pairwise(r)):
            raise ValueError("harm_restarts must start at 0 and increase")
        return self

    @classmethod
    def from_policy(cls, policy: RolloutPolicy, **overrides: float) -> SequentialDesign:
        """The policy's bake: its maximum, minimum and check interval; limits as documented."""
        base: dict[str, float] = {"max_bake_minutes": float(policy.bake_minutes),
                                  "min_bake_minutes": float(min(policy.min_bake_minutes, policy.bake_minutes)),
                                  "check_minutes": float(policy.bake_check_minutes)}
        return cls.model_validate({**base, **overrides})

    @property
    def signals(self) -> tuple[str, ...]:
        return tuple(sorted(self.limits))


class SignalEvidence(BaseModel):
    """One signal's sufficient statistics and when each test crossed; small enough for the rollout store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signal: str
    baseline_ss: float = Field(ge=0.0, description="Within-row sum of squares of the pre-change minutes.")
    baseline_df: int = Field(ge=0)
    clip: float = Field(gt=0.0, description="Increments are clipped to [-clip, clip].")
    margin: float = Field(description="Harm margin widened by the centre's estimation error.")
    tolerable: float = Field(description="Tolerable effect narrowed by the centre's estimation error.")
    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    segment_n: tuple[int, ...] = Field(description="Increments since each of the design's harm restarts.")
    segment_total: tuple[float, ...]
    log_e_harm: float = 0.0
    log_e_safe: float = 0.0
    harm_minute: float | None = None
    safe_minute: float | None = None
    confirm_minutes: float = Field(0.0, ge=0.0, description="How long a harm crossing must persist (one shadow).")
    pending_minute: float | None = Field(None, description="The unconfirmed harm crossing's minute.")
    confirm_n: int = Field(0, ge=0, description="Increments since the pending crossing.")
    confirm_above: int = Field(0, ge=0, description="Of them, those above the harm margin.")

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def harm_shown(self) -> bool:
        """Crossed, and where it must, persisted: what may be acted on at a level the caller sets."""
        return self.confirm_minutes <= 0.0 or self.harm_minute is not None


class StratumSequence(BaseModel):
    """The sequential state of one stratum: its signals' evidence and the verdict so far."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stratum_key: str
    signals: tuple[SignalEvidence, ...]
    verdict: SeqVerdict = SeqVerdict.CONTINUE
    minute: float = 0.0
    looks: int = 0


class SequentialDecision(BaseModel):
    """A look's verdict and its reason with the numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stratum_key: str
    verdict: SeqVerdict
    minute: float
    reason: str
    signals: dict[str, dict[str, float]]


# ------------------------------------------------------------------------------------------------ the core (arrays)
def log_mixture_e(s: FloatArray | float, v: FloatArray | float, mixture_sd: float) -> FloatArray:
    """log E of the one-sided normal mixture (see the module docstring) for statistic ``s`` after ``v`` increments."""
    from scipy.special import log_ndtr  # imported when a decision is made, not at the app's start-up

    r = 1.0 / (mixture_sd * mixture_sd)
    s_arr = np.asarray(s, dtype=np.float64)
    vr = np.asarray(v, dtype=np.float64) + r
    out: FloatArray = (math.log(2.0) + 0.5 * np.log(r / vr) + s_arr * s_arr / (2.0 * vr)
                       + log_ndtr(s_arr / np.sqrt(vr)))
    return out


def plug_in_sd(baseline_ss: FloatArray, baseline_df: FloatArray, n: FloatArray, total: FloatArray,
               total_sq: FloatArray, min_sd: FloatArray | float) -> FloatArray:
    """Pooled scale of the pre-change minutes and the increments so far (each about its own mean), floored, and
    never below the increments' own scale: a change that makes a signal noisier (a doubled Poisson rate doubles its
    variance) must not be judged with the calmer past's, which would overstate both kinds of evidence."""
    post_ss = np.maximum(total_sq - np.where(n > 0, total * total / np.maximum(n, 1), 0.0), 0.0)
    df = baseline_df + np.maximum(n - 1, 0)
    var = np.where(df > 0, (baseline_ss + post_ss) / np.maximum(df, 1), 0.0)
    post_var = np.where(n >= 2, post_ss / np.maximum(n - 1, 1), 0.0)
    out: FloatArray = np.maximum(np.sqrt(np.maximum(var, post_var)), min_sd)
    return out


def evidence(n: FloatArray, total: FloatArray, total_sq: FloatArray, baseline_ss: FloatArray,
             baseline_df: FloatArray, margin: FloatArray | float, tolerable: FloatArray | float,
             min_sd: FloatArray | float, mixture_sd: float) -> tuple[FloatArray, FloatArray]:
    """(log E for harm, log E for no harm) from sufficient statistics; broadcasts over strata and signals."""
    sd = plug_in_sd(baseline_ss, baseline_df, n, total, total_sq, min_sd)
    harm = log_mixture_e((total - n * margin) / sd, n, mixture_sd)
    safe = log_mixture_e((n * tolerable - total) / sd, n, mixture_sd)
    none = n <= 0
    return np.where(none, 0.0, harm), np.where(none, 0.0, safe)


def log_bernoulli_mixture(n: FloatArray, failures: FloatArray, null: FloatArray | float,
                          alternatives: FloatArray) -> FloatArray:
    """log of the mean over ``alternatives`` q of the likelihood ratio of q against ``null`` after ``failures``
    of ``n``. Against H0 p >= null with every q < null (or H0 p <= null with every q > null) each ratio is a
    nonnegative supermartingale (its expected step is 1 at p = null and moves away from 1 the right way), so their
    mean is an e-process (Wald's SPRT, mixed)."""
    k = np.asarray(failures, dtype=np.float64)[..., None]
    m = np.asarray(n, dtype=np.float64)[..., None]
    p0 = np.asarray(null, dtype=np.float64)[..., None]
    terms = k * (np.log(alternatives) - np.log(p0)) + (m - k) * (np.log1p(-alternatives) - np.log1p(-p0))
    top = np.max(terms, axis=-1, keepdims=True)
    out: FloatArray = (top + np.log(np.mean(np.exp(terms - top), axis=-1, keepdims=True)))[..., 0]
    return out


def signal_evidence(name: str, n: FloatArray, total: FloatArray, total_sq: FloatArray, baseline_ss: FloatArray,
                    baseline_df: FloatArray, margin: FloatArray | float, tolerable: FloatArray | float,
                    design: SequentialDesign, segment_n: FloatArray | None = None,
                    segment_total: FloatArray | None = None) -> tuple[FloatArray, FloatArray]:
    """(log E harm, log E no harm) of one signal: Bernoulli mixtures for probe signals, normal mixtures otherwise.

    ``segment_n`` and ``segment_total`` (a last axis over the design's ``harm_restarts``) give the harm test its
    restarts: the harm e-value is the equal-weight mean of the e-processes begun at each restart (one not yet begun
    counts as 1). Each is a test supermartingale that is 1 until it starts, so their mean is one too, and Ville's
    bound holds for the mixture as a whole: a mixture over onset times, at a cost of log(restarts) for an effect
    present from the start, and much sooner detection of one that begins later (the cumulative sum from minute 0
    would dilute it with the clean minutes before). Without segments the harm test runs from minute 0 only.
    """
    limit = design.limits[name]
    seg_n = np.asarray(n, dtype=np.float64)[..., None] if segment_n is None else np.asarray(segment_n, np.float64)
    seg_t = (np.asarray(total, dtype=np.float64)[..., None] if segment_total is None
             else np.asarray(segment_total, np.float64))
    if name not in ABSOLUTE_CENTRES:
        sd = plug_in_sd(baseline_ss, baseline_df, n, total, total_sq, limit.min_sd)
        m = np.asarray(margin, dtype=np.float64)[..., None]
        per_segment = log_mixture_e((seg_t - seg_n * m) / np.asarray(sd)[..., None], seg_n, design.mixture_sd)
        safe = log_mixture_e((n * tolerable - total) / sd, n, design.mixture_sd)
    else:
        up = np.geomspace(max(2.0 * limit.harm_margin, 1e-3), 0.9, BERNOULLI_GRID)
        down = np.geomspace(limit.tolerable / 100.0, 0.9 * limit.tolerable, BERNOULLI_GRID)
        per_segment = log_bernoulli_mixture(seg_n, seg_t, limit.harm_margin, up[up > limit.harm_margin])
        safe = log_bernoulli_mixture(n, total, limit.tolerable, down)
    per_segment = np.where(seg_n <= 0, 0.0, per_segment)
    top = np.max(per_segment, axis=-1, keepdims=True)
    harm = (top + np.log(np.mean(np.exp(per_segment - top), axis=-1, keepdims=True)))[..., 0]
    none = np.asarray(n) <= 0
    return np.where(none, 0.0, harm), np.where(none, 0.0, safe)


def thresholds(design: SequentialDesign, signals: int, name: str = "") -> tuple[float, float]:
    """log(1/level) of a signal's e-processes: harm at alpha (Bonferroni over ``signals``), no harm at beta; each
    halved where the other half bounds an estimated centre's error (not for :data:`ABSOLUTE_CENTRES`)."""
    split = 1.0 if name in ABSOLUTE_CENTRES else 2.0
    return math.log(split * max(signals, 1) / design.alpha), math.log(split / design.beta)


def centre_quantiles(design: SequentialDesign, signals: int) -> tuple[float, float]:
    """Normal quantiles that bound the centre's error: the other halves of alpha (per signal) and beta."""
    from scipy.special import ndtri  # imported when a decision is made, not at the app's start-up

    return (float(-ndtri(design.alpha / (2.0 * max(signals, 1)))), float(-ndtri(design.beta / 2.0)))


# ------------------------------------------------------------------------------------------------ stratum state
def start_sequence(stratum_key: str, baseline: Mapping[str, FloatArray], design: SequentialDesign,
                   control_baseline: Mapping[str, FloatArray] | None = None) -> StratumSequence:
    """A stratum's state at the change, from its shadows' pre-change oriented deviations (rows x minutes).

    ``baseline`` maps each signal to :func:`baseline_deviations` of the shadows' pre-change minutes: their
    within-row spread is the signal's noise before the change, and their count says how well each row's centre is
    known. ``control_baseline``, the same for the control twins when their shift is subtracted, adds the twins'
    centre error.
    """
    z_harm, z_safe = centre_quantiles(design, len(design.signals))
    signals = []
    for name in design.signals:
        limit = design.limits[name]
        ss, df, se2 = _spread(name, baseline.get(name), limit.min_sd)
        sd = max(math.sqrt(ss / df) if df else 0.0, limit.min_sd)
        if control_baseline is not None and name in control_baseline:
            twins = np.atleast_2d(np.asarray(control_baseline[name])).shape[0]
            factor = math.pi / 2.0 if twins >= 3 else 1.0  # a median over 3 or more twins: pi/2 a mean's variance
            se2 += factor * _spread(name, control_baseline[name], limit.min_sd)[2]
        se = math.sqrt(se2)
        clip = 1.0 if name in ABSOLUTE_CENTRES else design.clip_sd * sd
        restarts = len(design.harm_restarts)
        confirm = design.transient_minutes if name not in ABSOLUTE_CENTRES and _units(baseline.get(name)) < 2 else 0.0
        signals.append(SignalEvidence(signal=name, baseline_ss=ss, baseline_df=df, clip=clip,
                                      segment_n=(0,) * restarts, segment_total=(0.0,) * restarts,
                                      margin=limit.harm_margin + z_harm * se, tolerable=limit.tolerable - z_safe * se,
                                      confirm_minutes=confirm))
    return StratumSequence(stratum_key=stratum_key, signals=tuple(signals))


def _units(deviations: FloatArray | None) -> int:
    """Shadows with at least one pre-change minute: the independent units a stratum's evidence rests on."""
    if deviations is None:
        return 0
    rows = np.atleast_2d(np.asarray(deviations, dtype=np.float64))
    return int(np.sum(np.any(~np.isnan(rows), axis=1)))


def _spread(name: str, deviations: FloatArray | None, min_sd: float) -> tuple[float, int, float]:
    """Within-row sum of squares, its degrees of freedom, and the variance of the rows' mean centre error.

    A median centre's variance is pi/2 times a mean's (its asymptotic efficiency). Without a pre-change minute
    the centre is unknown: ``UNKNOWN_CENTRE_SE`` (finite, so the state stays JSON) makes both tests unreachable.
    """
    if deviations is None:
        return 0.0, 0, UNKNOWN_CENTRE_SE ** 2
    rows = np.atleast_2d(np.asarray(deviations, dtype=np.float64))
    factor = 1.0 if SIGNAL_ORIENTATION.get(name, (0, 0.0, True))[2] else math.pi / 2.0
    ss, df, var_sum, seen = 0.0, 0, 0.0, 0
    counts = np.sum(~np.isnan(rows), axis=1)
    for row_ss, m in zip(_row_sums_of_squares(rows, counts).tolist(), counts.tolist(), strict=True):
        if m >= 2:
            ss += row_ss
            df += m - 1
    sd2 = max(ss / df if df else 0.0, min_sd * min_sd)
    for m in counts.tolist():
        if m:
            var_sum += factor * sd2 / m
            seen += 1
    if not seen:
        return ss, df, UNKNOWN_CENTRE_SE ** 2
    if name in ABSOLUTE_CENTRES:
        return ss, df, 0.0
    return ss, df, var_sum / (seen * seen)


def _row_sums_of_squares(rows: FloatArray, counts: NDArray[np.int64]) -> FloatArray:
    """Each row's sum of squared deviations from its mean over its non-NaN values (rows with fewer than two
    values: NaN); the same numbers as the sums of each row alone (see :func:`_row_means`)."""
    out = np.full(rows.shape[0], np.nan)
    full = np.nonzero(counts == rows.shape[1])[0] if rows.shape[1] >= 2 else np.zeros(0, dtype=np.int64)
    if full.size:
        block = np.ascontiguousarray(rows[full])
        out[full] = np.sum((block - block.mean(axis=1)[:, None]) ** 2, axis=1)
    for i in np.nonzero((counts >= 2) & (counts < rows.shape[1]))[0]:
        kept = rows[i][~np.isnan(rows[i])]
        out[i] = float(np.sum((kept - kept.mean()) ** 2))
    return out


def update_sequence(state: StratumSequence, increments: Mapping[str, FloatArray], minute: float,
                    design: SequentialDesign) -> tuple[StratumSequence, SequentialDecision]:
    """Add one look's increments (any shape; NaN ignored) at ``minute`` since the change; the new state and verdict.

    A look at or before the state's last minute is a replay (an activity run twice): it adds nothing and returns
    the state as it was. The caller feeds each minute's increments in one look only.
    """
    if state.looks and minute <= state.minute:
        return state, SequentialDecision(stratum_key=state.stratum_key, verdict=state.verdict, minute=state.minute,
                                         reason=explain(state, design), signals=_numbers(list(state.signals)))
    k = len(state.signals)
    updated: list[SignalEvidence] = []
    for ev in state.signals:
        harm_level, safe_level = thresholds(design, k, ev.signal)
        raw = np.asarray(increments.get(ev.signal, np.zeros(0)), dtype=np.float64).ravel()
        x = np.clip(raw[~np.isnan(raw)], -ev.clip, ev.clip)
        n, total, total_sq = ev.n + x.size, ev.total + float(x.sum()), ev.total_sq + float(np.sum(x * x))
        begun = [start <= state.minute for start in design.harm_restarts]  # the look's window opens at state.minute
        seg_n = tuple(c + (x.size if b else 0) for c, b in zip(ev.segment_n, begun, strict=True))
        seg_t = tuple(c + (float(x.sum()) if b else 0.0) for c, b in zip(ev.segment_total, begun, strict=True))
        lh, ls = signal_evidence(ev.signal, np.asarray(float(n)), np.asarray(total), np.asarray(total_sq),
                                 np.asarray(ev.baseline_ss), np.asarray(float(ev.baseline_df)), ev.margin,
                                 ev.tolerable, design, np.asarray(seg_n, dtype=np.float64), np.asarray(seg_t))
        log_h, log_s = float(lh), float(ls)
        enough = n >= design.min_increments
        crossed = enough and log_h >= harm_level
        harm_minute = ev.harm_minute
        pending, conf_n, conf_above = ev.pending_minute, ev.confirm_n, ev.confirm_above
        if harm_minute is None and ev.confirm_minutes <= 0.0:
            harm_minute = minute if crossed else None
        elif harm_minute is None:
            counted = x if pending is not None and state.minute >= pending else x[:0]  # the look began after it
            harm_minute, pending, conf_n, conf_above = confirm_step(
                ev, crossed, counted.size, int(np.sum(counted > ev.margin)), minute)
        safe_minute = ev.safe_minute
        if safe_minute is None and enough and minute >= design.min_bake_minutes and log_s >= safe_level:
            safe_minute = minute
        updated.append(ev.model_copy(update={"n": n, "total": total, "total_sq": total_sq, "segment_n": seg_n,
                                             "segment_total": seg_t, "log_e_harm": log_h,
                                             "log_e_safe": log_s, "harm_minute": harm_minute,
                                             "safe_minute": safe_minute, "pending_minute": pending,
                                             "confirm_n": conf_n, "confirm_above": conf_above}))
    verdict = classify(updated, minute, design)
    new = state.model_copy(update={"signals": tuple(updated), "verdict": verdict, "minute": minute,
                                   "looks": state.looks + 1})
    return new, SequentialDecision(stratum_key=state.stratum_key, verdict=verdict, minute=minute,
                                   reason=explain(new, design), signals=_numbers(updated))


def confirm_step(ev: SignalEvidence, crossed: bool, look_n: int, look_above: int, minute: float,
                 ) -> tuple[float | None, float | None, int, int]:
    """One look of a crossing's confirmation: (harm minute, pending minute, increments, of them above the margin).

    ``look_n`` and ``look_above`` count this look's increments if its window opened at or after the pending
    crossing (else 0). Once ``confirm_minutes`` have passed since the crossing, a majority above the margin with
    the e-value still over its level is harm; anything else was a transient and is dismissed, and a crossing at
    this very look starts a new confirmation.
    """
    pending, conf_n, conf_above = ev.pending_minute, ev.confirm_n + look_n, ev.confirm_above + look_above
    if pending is not None and minute - pending >= ev.confirm_minutes:
        if crossed and 2 * conf_above > conf_n:
            return minute, pending, conf_n, conf_above
        pending, conf_n, conf_above = None, 0, 0
    if pending is None and crossed:
        return None, minute, 0, 0
    return None, pending, conf_n, conf_above


def classify(signals: list[SignalEvidence], minute: float, design: SequentialDesign) -> SeqVerdict:
    """Harm if any signal crossed; no harm once every signal did (from the minimum bake); else wait or give up."""
    if any(s.harm_minute is not None for s in signals):
        return SeqVerdict.HARM
    if signals and all(s.safe_minute is not None for s in signals):
        return SeqVerdict.NO_HARM
    if minute >= design.max_bake_minutes:
        return SeqVerdict.INCONCLUSIVE
    return SeqVerdict.CONTINUE


class BakeStatus(BaseModel):
    """Whether the bake can end: every stratum decided (harm or no harm), or the maximum bake reached."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    done: bool
    harmed: tuple[str, ...]
    no_harm: tuple[str, ...]
    pending: tuple[str, ...]
    reason: str


SUSPICION_E = 10.0
"""An undecided stratum whose harm e-value reached this (strong evidence on Jeffreys' scale, though short of
proof) is suspect: it keeps the bake going and counts as doubt for the waves. Good strata almost never get there
(the harm margins keep their evidence near 1; bench/results/sequential.json)."""


def suspicious(state: StratumSequence) -> bool:
    """Undecided, with harm evidence of at least :data:`SUSPICION_E` on some signal."""
    return state.verdict not in (SeqVerdict.HARM, SeqVerdict.NO_HARM) and any(
        s.log_e_harm >= math.log(SUSPICION_E) for s in state.signals)


def bake_status(states: Mapping[str, StratumSequence], minute: float, design: SequentialDesign,
                fleet: StratumSequence | None = None) -> BakeStatus:
    """The bake ends at the first look where no stratum is still undecided, and at the latest at the maximum bake.

    Two shadows per stratum rarely show every stratum free of harm within half an hour (with 25 strata, almost
    never: bench/results/sequential.json), so the bake may also end from the minimum bake on when ``fleet`` (the
    same procedure on every shadow pooled) shows no harm and no undecided stratum is suspect. The undecided strata
    then go on being watched on their shadows through the waves, whose first slice holds each of them. A harmed
    stratum does not end the bake alone: the halt rule decides from all of them whether to halt or to skip it.
    """
    harmed = tuple(sorted(k for k, s in states.items() if s.verdict is SeqVerdict.HARM))
    no_harm = tuple(sorted(k for k, s in states.items() if s.verdict is SeqVerdict.NO_HARM))
    pending = tuple(sorted(k for k, s in states.items() if s.verdict not in (SeqVerdict.HARM, SeqVerdict.NO_HARM)))
    suspects = [k for k in pending if suspicious(states[k])]
    counts = (f"{len(harmed)} harmed, {len(no_harm)} no harm, {len(pending)} undecided ({len(suspects)} suspect) "
              f"of {len(states)} strata")
    if not pending:
        return BakeStatus(done=True, harmed=harmed, no_harm=no_harm, pending=pending,
                          reason=f"bake ends at minute {minute:g}: every stratum decided ({counts})")
    if (fleet is not None and fleet.verdict is SeqVerdict.NO_HARM and not suspects
            and minute >= design.min_bake_minutes):
        return BakeStatus(done=True, harmed=harmed, no_harm=no_harm, pending=pending,
                          reason=f"bake ends at minute {minute:g}: the pooled shadows show no harm at the tolerable "
                                 f"effect and no undecided stratum is suspect ({counts})")
    if minute >= design.max_bake_minutes:
        return BakeStatus(done=True, harmed=harmed, no_harm=no_harm, pending=pending,
                          reason=f"bake ends at the maximum {design.max_bake_minutes:g} min: {counts}")
    return BakeStatus(done=False, harmed=harmed, no_harm=no_harm, pending=pending,
                      reason=f"bake continues at minute {minute:g}: {counts}")


def explain(state: StratumSequence, design: SequentialDesign) -> str:
    levels = {s.signal: thresholds(design, len(state.signals), s.signal) for s in state.signals}
    safe_level = max(v[1] for v in levels.values()) if levels else 0.0
    head = f"stratum {state.stratum_key} at minute {state.minute:g} ({state.looks} looks): "
    if state.verdict is SeqVerdict.HARM:
        parts = [f"{s.signal} mean change {s.mean:+.1%} over {s.n} increments, e-value "
                 f"{_e(s.log_e_harm)} >= {_e(levels[s.signal][0])} (alpha {design.alpha:g} over "
                 f"{len(state.signals)} signals) that it is worse than {s.margin:.1%}"
                 + (f", on one shadow and persisting: {s.confirm_above} of {s.confirm_n} increments above it in "
                    f"the {s.confirm_minutes:g} min after minute {s.pending_minute:g}"
                    if s.confirm_minutes > 0.0 and s.pending_minute is not None else "")
                 for s in state.signals if s.harm_minute is not None]
        return head + "harm shown: " + "; ".join(parts)
    if state.verdict is SeqVerdict.NO_HARM:
        worst = min(state.signals, key=lambda s: s.log_e_safe)
        return (head + f"no harm at the tolerable effect on all {len(state.signals)} signals (e-values >= "
                f"{_e(safe_level)}, beta {design.beta:g}; weakest {worst.signal} {_e(worst.log_e_safe)}, mean "
                f"{worst.mean:+.1%} vs tolerable {worst.tolerable:.1%})")
    pending = [s for s in state.signals if s.safe_minute is None]
    detail = ", ".join(f"{s.signal} {s.mean:+.1%} (harm e {_e(s.log_e_harm)}, no-harm e {_e(s.log_e_safe)}"
                       + (f"; harm on one shadow since minute {s.pending_minute:g}, {s.confirm_above} of "
                          f"{s.confirm_n} increments after it above {s.margin:.1%}: persists "
                          f"{s.confirm_minutes:g} min or is a transient" if s.pending_minute is not None else "")
                       + ")" for s in pending)
    if state.verdict is SeqVerdict.INCONCLUSIVE:
        return head + f"inconclusive at the maximum bake {design.max_bake_minutes:g} min: {detail}"
    return head + f"continue (no harm needs e >= {_e(safe_level)} from minute {design.min_bake_minutes:g}): {detail}"


def _e(log_e: float) -> str:
    return f"{math.exp(min(log_e, 700.0)):.3g}"


def _numbers(signals: list[SignalEvidence]) -> dict[str, dict[str, float]]:
    return {s.signal: {"n": float(s.n), "mean": round(s.mean, 6), "log_e_harm": round(s.log_e_harm, 4),
                       "log_e_safe": round(s.log_e_safe, 4)} for s in signals}


# ------------------------------------------------------------------------------------------------ from frames
def _centres(name: str, values: FloatArray) -> FloatArray:
    _, _, mean_centre = SIGNAL_ORIENTATION[name]
    if name in ABSOLUTE_CENTRES:
        return np.full(values.shape[0], ABSOLUTE_CENTRES[name])
    if not mean_centre:
        return _row_medians(values)
    return _row_means(values)


def _row_means(values: FloatArray) -> FloatArray:
    """Each row's mean over its non-NaN values: the rows without a gap at once (numpy sums each row of a
    contiguous block pairwise, as it sums the row alone, so the numbers are the same as ``row.mean()``), the
    few with gaps one by one."""
    out = np.full(values.shape[0], np.nan)
    if values.size == 0:
        return out
    gaps = np.isnan(values).any(axis=1)
    full = np.nonzero(~gaps)[0]
    if full.size:
        out[full] = np.ascontiguousarray(values[full]).mean(axis=1)
    for i in np.nonzero(gaps)[0]:
        kept = values[i][~np.isnan(values[i])]
        if kept.size:
            out[i] = float(kept.mean())
    return out


def _row_medians(values: FloatArray) -> FloatArray:
    """Each row's median over its non-NaN values, all rows at once: the same numbers as ``np.median`` of each
    row's kept values (the middle one, or the mean of the middle two), without a call per row (a 10,000-VM
    rollout's looks made close to a million of them)."""
    out = np.full(values.shape[0], np.nan)
    if values.size == 0:
        return out
    ordered = np.sort(values, axis=1)  # NaNs sort last
    n = np.sum(~np.isnan(values), axis=1)
    rows = np.nonzero(n > 0)[0]
    lo, hi = (n[rows] - 1) // 2, n[rows] // 2
    out[rows] = (ordered[rows, lo] + ordered[rows, hi]) / 2.0
    return out


def _relative(name: str, values: FloatArray, centres: FloatArray) -> FloatArray:
    direction, floor, _ = SIGNAL_ORIENTATION[name]
    denom = np.maximum(np.abs(centres), floor)[:, None]
    out: FloatArray = direction * (values - centres[:, None]) / denom
    return out


def baseline_deviations(baseline: SignalFrame) -> dict[str, FloatArray]:
    """Each known signal's pre-change minutes as oriented relative deviations from their row's centre."""
    out: dict[str, FloatArray] = {}
    for name, values in baseline.signals.items():
        if name in SIGNAL_ORIENTATION:
            v = np.asarray(values, dtype=np.float64)
            out[name] = _relative(name, v, _centres(name, v))
    return out


def oriented_changes(baseline: SignalFrame, window: SignalFrame,
                     control: tuple[SignalFrame, SignalFrame] | None = None) -> dict[str, FloatArray]:
    """One look's increments: each shadow-minute of ``window`` against its row's pre-change centre, oriented.

    ``baseline`` and ``window`` hold the same shadows (rows); ``control`` the same two windows of untouched twins:
    the median over the twins of each one's mean oriented change over the window is subtracted (the environment's
    shift, not the change's). The median, because one twin's centre can be wrong by far more than its spread
    suggests: a benign burst over half of its few pre-change minutes puts its median inside the burst, and its
    every later minute then looks like a fall the shadows did not share (a good change's CPU "harm").
    """
    out: dict[str, FloatArray] = {}
    for name, values in window.signals.items():
        if name not in SIGNAL_ORIENTATION or name not in baseline.signals:
            continue
        centres = _centres(name, np.asarray(baseline.signals[name], dtype=np.float64))
        x = _relative(name, np.asarray(values, dtype=np.float64), centres)
        if (control is not None and name not in ABSOLUTE_CENTRES and name in control[0].signals
                and name in control[1].signals):
            c_centres = _centres(name, np.asarray(control[0].signals[name], dtype=np.float64))
            c = _relative(name, np.asarray(control[1].signals[name], dtype=np.float64), c_centres)
            seen = np.any(~np.isnan(c), axis=1)
            if np.any(seen):
                x = x - float(np.median(np.nanmean(c[seen], axis=1)))
        out[name] = x
    return out
