"""Operating characteristics of the sequential bake (:mod:`shared.domain.sequential`), by simulation.

Thousands of strata at once, vectorised with numpy: each stratum's shadows emit the simulator's signals (its load,
CPU, memory, network, error-log and health-probe models, benign CPU and error spikes and missing points; see
``FleetWorld.signals``), pre-change minutes first, then minutes after the change checked every ``check_minutes``.
A good stratum measures the false-alarm rate (harm declared at any look up to the horizon, which runs past the
bake into the waves, as the shadows keep being watched) and how soon "no harm" ends its bake; a bad one measures
the power and the time to detection. Every statistic is the domain module's own (:func:`evidence`,
:func:`thresholds`, :func:`centre_quantiles`); only the bookkeeping is done here over arrays, and a test checks it
against :func:`update_sequence` stratum by stratum.

``python -m shared.bench.sequential_oc`` writes the default design's figures to ``bench/results/sequential.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import beta as beta_dist

from ..domain.sequential import (
    ABSOLUTE_CENTRES,
    SIGNAL_ORIENTATION,
    SUSPICION_E,
    FloatArray,
    SequentialDesign,
    centre_quantiles,
    signal_evidence,
    thresholds,
)

SPIKE_RATE = 0.003
"""Benign spikes per VM-minute, as the simulator's ``SPIKE_RATE``; each lasts 1 to 5 minutes."""
GAP_RATE = 0.01
ROLLOUT_STRATA = 25
"""Strata of a typical corpus rollout (the standard three-set fleet has about 25)."""
HEALTH_FAIL = 0.0005


@dataclass(frozen=True)
class Effect:
    """What a bad change does to every shadow of the stratum from ``onset`` minutes after the change."""

    name: str
    cpu_points: float = 0.0
    leak_pct_per_min: float = 0.0
    error_factor: float = 1.0
    flap_probability: float = 0.0
    net_drop: float = 0.0
    onset: float = 0.0


TYPICAL_EFFECTS: tuple[Effect, ...] = (
    Effect("cpu +6 points (cpu-regression-subtle)", cpu_points=6.0),
    Effect("cpu +24 points", cpu_points=24.0),
    Effect("memory leak 0.2 %/min", leak_pct_per_min=0.2),
    Effect("error rate x2 (error-burst-subtle)", error_factor=2.0),
    Effect("error rate x13 (error-burst-all)", error_factor=13.0),
    Effect("health probe fails 5%", flap_probability=0.05),
    Effect("health probe fails 22% (health-flap-subtle)", flap_probability=0.22),
    Effect("network -40% (network-degradation)", net_drop=0.4),
    Effect("cpu +24 points from minute 20", cpu_points=24.0, onset=20.0),
    Effect("error rate x13 from minute 40", error_factor=13.0, onset=40.0),
)
"""Effects at the simulator's magnitudes for the corpus's severities (``FleetWorld.signals``)."""


@dataclass(frozen=True)
class Outcome:
    """Per stratum: the verdict code (0 continue, 1 harm, 2 no harm, 3 inconclusive at the end) and its minutes."""

    harm_minute: FloatArray
    safe_minute: FloatArray
    stop_minute: FloatArray
    signal_safe_minute: FloatArray
    """(strata, signals): when each signal showed no harm; ``signals`` names the columns."""
    signals: tuple[str, ...]
    look_minutes: FloatArray
    max_log_e_harm: FloatArray
    """(strata, looks): the largest harm log e-value over the signals at each look."""


def signals(rng: np.random.Generator, strata: int, rows: int, minutes: int, change_at: int,
            effect: Effect | None) -> dict[str, FloatArray]:
    """Raw per-minute signals, shape (strata, rows, minutes); the change is applied at column ``change_at``."""
    shape = (strata, rows, minutes)
    load = rng.uniform(0.05, 0.7, size=(strata, rows, 1))
    t = np.arange(minutes)[None, None, :] - change_at + 0.5
    on = (t >= (effect.onset if effect else math.inf)) & (t >= 0)
    spike = _spikes(rng, shape)
    cpu = 100.0 * (0.05 + 0.85 * load) + 2.0 * rng.standard_normal(shape)
    cpu = np.where(spike, cpu + 25.0 + 15.0 * rng.uniform(size=shape), cpu)
    mem = rng.uniform(60.0, 85.0, size=(strata, rows, 1)) - 15.0 * load + rng.standard_normal(shape)
    vcpus = rng.choice([2.0, 4.0, 8.0], size=(strata, rows, 1))
    net = 6.0e7 * vcpus * load * (1.0 + 0.05 * rng.standard_normal(shape))
    lam = np.broadcast_to(0.5 + 2.0 * load, shape)
    p_fail = np.full(shape, HEALTH_FAIL)
    if effect is not None:
        cpu = np.where(on, cpu + effect.cpu_points, cpu)
        mem = np.where(on, mem - effect.leak_pct_per_min * np.maximum(t - effect.onset, 0.0), mem)
        net = np.where(on, net * (1.0 - effect.net_drop), net)
        lam = np.where(on, lam * effect.error_factor, lam)
        p_fail = np.where(on, np.maximum(p_fail, effect.flap_probability), p_fail)
    errors = rng.poisson(np.where(spike, lam * 3.0, lam)).astype(np.float64)
    health = (rng.uniform(size=shape) >= p_fail).astype(np.float64)
    metric_gap = rng.uniform(size=shape) < GAP_RATE
    log_gap = rng.uniform(size=shape) < GAP_RATE / 2
    return {"cpu_pct": np.where(metric_gap, np.nan, np.clip(cpu, 0.0, 100.0)),
            "mem_available_pct": np.where(metric_gap, np.nan, np.clip(mem, 0.0, 100.0)),
            "net_bytes": np.where(metric_gap, np.nan, net),
            "error_count": np.where(log_gap, np.nan, errors),
            "health_ok": np.where(log_gap, np.nan, health)}


def _spikes(rng: np.random.Generator, shape: tuple[int, int, int]) -> NDArray[np.bool_]:
    starts = rng.uniform(size=shape) < SPIKE_RATE
    lengths = rng.integers(1, 6, size=shape)
    out = np.zeros(shape, dtype=bool)
    for lag in range(5):
        shifted = np.roll(starts & (lengths > lag), lag, axis=-1)
        shifted[..., :lag] = False
        out |= shifted
    return out


def run(design: SequentialDesign, strata: int, *, effect: Effect | None = None, rows: int = 2,
        baseline_minutes: int = 10, horizon_minutes: float = 90.0, seed: int = 0) -> Outcome:
    """Simulate ``strata`` strata and run the sequential procedure on each; vectorised over strata."""
    rng = np.random.default_rng(seed)
    post = math.ceil(horizon_minutes)
    raw = signals(rng, strata, rows, baseline_minutes + post, baseline_minutes, effect)
    names = [n for n in design.signals if n in raw]
    k = len(names)
    z_harm, z_safe = centre_quantiles(design, k)
    look_ends = np.arange(design.check_minutes, horizon_minutes + 1e-9, design.check_minutes)
    cols = np.minimum(np.floor(look_ends + 1e-9).astype(int), post)
    crossed_h = np.zeros((strata, k, len(cols)), dtype=bool)
    max_log_h = np.full((strata, len(cols)), -np.inf)
    # a restart's e-process takes the looks whose window opens at or after it (as update_sequence does)
    opens = np.concatenate([[0.0], look_ends[:-1]])
    open_cols = np.concatenate([[0], cols[:-1]])
    first = [int(np.argmax(opens >= r)) if np.any(opens >= r) else len(cols) for r in design.harm_restarts]
    start_cols = [int(open_cols[f]) if f < len(cols) else 0 for f in first]
    active = [(np.arange(len(cols)) >= f)[None, :] for f in first]
    crossed_s = np.zeros((strata, k, len(cols)), dtype=bool)
    for j, name in enumerate(names):
        limit = design.limits[name]
        direction, floor, mean_centre = SIGNAL_ORIENTATION[name]
        base, after = raw[name][..., :baseline_minutes], raw[name][..., baseline_minutes:]
        with np.errstate(all="ignore"):
            centre = np.nanmean(base, axis=-1) if mean_centre else np.nanmedian(base, axis=-1)
            if name in ABSOLUTE_CENTRES:
                centre = np.full_like(centre, ABSOLUTE_CENTRES[name])
            denom = np.maximum(np.abs(centre), floor)[..., None]
            dev_b = direction * (base - centre[..., None]) / denom
            x = direction * (after - centre[..., None]) / denom
            row_mean = np.nanmean(dev_b, axis=-1, keepdims=True)
        counts = np.sum(~np.isnan(dev_b), axis=-1)
        ss = np.nansum(np.where(counts[..., None] >= 2, (dev_b - row_mean) ** 2, 0.0), axis=(1, 2))
        df = np.sum(np.where(counts >= 2, counts - 1, 0), axis=1).astype(np.float64)
        sd2 = np.maximum(np.where(df > 0, ss / np.maximum(df, 1), 0.0), limit.min_sd ** 2)
        factor = 1.0 if mean_centre else math.pi / 2.0
        seen = np.sum(counts > 0, axis=1)
        se = np.sqrt(np.sum(np.where(counts > 0, factor * sd2[:, None] / np.maximum(counts, 1), 0.0), axis=1)
                     / np.maximum(seen, 1) ** 2)
        if name in ABSOLUTE_CENTRES:
            se = np.zeros_like(se)
        clip = np.ones_like(sd2) if name in ABSOLUTE_CENTRES else design.clip_sd * np.sqrt(sd2)
        xc = np.clip(x, -clip[:, None, None], clip[:, None, None])
        ok = ~np.isnan(xc)
        per_min_n = np.sum(ok, axis=1).astype(np.float64)
        per_min_sum = np.sum(np.where(ok, xc, 0.0), axis=1)
        per_min_sq = np.sum(np.where(ok, xc * xc, 0.0), axis=1)
        full = [np.concatenate([np.zeros((strata, 1)), np.cumsum(a, axis=1)], axis=1)
                for a in (per_min_n, per_min_sum, per_min_sq)]
        cum = [f[:, cols] for f in full]
        seg_n, seg_t = (np.stack([np.where(active[r], f[:, cols] - f[:, start_cols[r]][:, None], 0.0)
                                  for r in range(len(start_cols))], axis=-1) for f in full[:2])
        margin = limit.harm_margin + z_harm * se
        tolerable = limit.tolerable - z_safe * se
        lh, ls = signal_evidence(name, cum[0], cum[1], cum[2], ss[:, None], df[:, None], margin[:, None],
                                 tolerable[:, None], design, seg_n, seg_t)
        harm_level, safe_level = thresholds(design, k, name)
        max_log_h = np.maximum(max_log_h, lh)
        crossed_h[:, j] = (cum[0] >= design.min_increments) & (lh >= harm_level)
        units = np.sum(np.any(~np.isnan(dev_b), axis=-1), axis=1)
        one = (units < 2) if name not in ABSOLUTE_CENTRES and design.transient_minutes > 0 else np.zeros(strata, bool)
        if one.any():
            above = np.concatenate([np.zeros((strata, 1)), np.cumsum(np.sum(ok & (xc > margin[:, None, None]),
                                                                           axis=1), axis=1)], axis=1)
            confirmed = _confirmed(crossed_h[:, j], full[0], above, cols, open_cols, look_ends, opens,
                                   design.transient_minutes)
            crossed_h[:, j] = np.where(one[:, None], confirmed, crossed_h[:, j])
        crossed_s[:, j] = ((cum[0] >= design.min_increments) & (ls >= safe_level)
                           & (look_ends >= design.min_bake_minutes)[None, :])
    harm_minute = _first(np.any(crossed_h, axis=1), look_ends)
    per_signal = np.stack([_first(crossed_s[:, j], look_ends) for j in range(k)], axis=1)
    safe_minute = np.max(per_signal, axis=1)
    stop = np.minimum(harm_minute, safe_minute)
    stop = np.where(np.isinf(stop), np.maximum(design.max_bake_minutes, 0.0), stop)
    return Outcome(harm_minute, safe_minute, np.minimum(stop, design.max_bake_minutes), per_signal, tuple(names),
                   look_ends, max_log_h)


def _confirmed(crossed: NDArray[np.bool_], cum_n: FloatArray, cum_above: FloatArray, cols: NDArray[np.int64],
               open_cols: NDArray[np.int64], look_ends: FloatArray, opens: FloatArray, transient: float,
               ) -> NDArray[np.bool_]:
    """(strata, looks): harm shown, with each crossing confirmed as :func:`~shared.domain.sequential.confirm_step`
    confirms it (a majority above the margin over the ``transient`` minutes after it, else dismissed)."""
    strata = crossed.shape[0]
    pending = np.full(strata, np.nan)
    conf_n, conf_above = np.zeros(strata), np.zeros(strata)
    harm = np.full(strata, np.inf)
    for look, minute in enumerate(look_ends):
        counting = ~np.isnan(pending) & (opens[look] >= pending)
        conf_n += np.where(counting, cum_n[:, cols[look]] - cum_n[:, open_cols[look]], 0.0)
        conf_above += np.where(counting, cum_above[:, cols[look]] - cum_above[:, open_cols[look]], 0.0)
        undecided = np.isinf(harm)
        expired = undecided & ~np.isnan(pending) & (minute - pending >= transient)
        confirm = expired & crossed[:, look] & (2.0 * conf_above > conf_n)
        harm = np.where(confirm, minute, harm)
        reset = (expired & ~confirm) | (undecided & np.isnan(pending) & crossed[:, look])
        start = reset & crossed[:, look]
        pending = np.where(reset, np.where(start, minute, np.nan), pending)
        conf_n, conf_above = np.where(reset, 0.0, conf_n), np.where(reset, 0.0, conf_above)
    out: NDArray[np.bool_] = look_ends[None, :] >= harm[:, None]
    return out


def _first(crossed: NDArray[np.bool_], minutes: FloatArray) -> FloatArray:
    any_ = np.any(crossed, axis=-1)
    idx = np.argmax(crossed, axis=-1)
    out: FloatArray = np.where(any_, minutes[idx], np.inf)
    return out


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact binomial interval for k of n."""
    a = (1.0 - level) / 2.0
    lo = 0.0 if k == 0 else float(beta_dist.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta_dist.ppf(1.0 - a, k + 1, n - k))
    return lo, hi


def false_alarms(design: SequentialDesign, strata: int = 2000, *, seed: int = 0, rows: int = 2,
                 horizon_minutes: float = 90.0) -> dict[str, Any]:
    """Good strata: how many were ever declared harmed (with its 95% interval) and how soon 'no harm' came."""
    o = run(design, strata, rows=rows, horizon_minutes=horizon_minutes, seed=seed)
    harmed = int(np.sum(np.isfinite(o.harm_minute)))
    lo, hi = clopper_pearson(harmed, strata)
    safe_by_max = np.isfinite(o.safe_minute) & (o.safe_minute <= design.max_bake_minutes)
    rollouts = safe_by_max[: strata - strata % ROLLOUT_STRATA].reshape(-1, ROLLOUT_STRATA)
    at_min = int(np.argmin(np.abs(o.look_minutes - design.min_bake_minutes)))
    suspect = (o.max_log_e_harm[:, at_min] >= math.log(SUSPICION_E)) & ~(o.harm_minute <= o.look_minutes[at_min])
    suspect_rollouts = suspect[: strata - strata % ROLLOUT_STRATA].reshape(-1, ROLLOUT_STRATA)
    return {"strata": strata, "rows": rows, "horizon_minutes": horizon_minutes, "nominal": design.alpha,
            "false_alarms": harmed, "rate": harmed / strata, "ci95": [round(lo, 5), round(hi, 5)],
            "no_harm_by_max_bake": round(float(np.mean(safe_by_max)), 4),
            f"all_of_{ROLLOUT_STRATA}_no_harm_by_max_bake": round(float(np.mean(np.all(rollouts, axis=1))), 4)
            if rollouts.size else None,
            "suspect_at_min_bake": round(float(np.mean(suspect)), 4),
            f"any_of_{ROLLOUT_STRATA}_suspect_at_min_bake": round(float(np.mean(np.any(suspect_rollouts, axis=1))), 4)
            if suspect_rollouts.size else None,
            "median_stop_minute": float(np.median(o.stop_minute))}


def power(design: SequentialDesign, effect: Effect, strata: int = 500, *, seed: int = 1, rows: int = 2,
          horizon_minutes: float = 90.0) -> dict[str, Any]:
    """Bad strata: detected by the maximum bake and by the horizon, the median minute, and wrong 'no harm'."""
    o = run(design, strata, effect=effect, rows=rows, horizon_minutes=horizon_minutes, seed=seed)
    found = np.isfinite(o.harm_minute)
    wrong = np.isfinite(o.safe_minute) & (o.safe_minute < o.harm_minute)
    return {"effect": effect.name, "strata": strata, "rows": rows,
            "detected_by_max_bake": round(float(np.mean(o.harm_minute <= design.max_bake_minutes)), 4),
            "detected_by_horizon": round(float(np.mean(found)), 4),
            "median_detection_minute": float(np.median(o.harm_minute[found])) if found.any() else None,
            "no_harm_first": round(float(np.mean(wrong)), 4)}


def operating_characteristics(design: SequentialDesign | None = None, *, strata: int = 2000,
                              seed: int = 0, rows: tuple[int, ...] = (2, 4, 1)) -> dict[str, Any]:
    """The false-alarm rate over good strata and the power on :data:`TYPICAL_EFFECTS`, for strata of 2 shadows
    (the policy's minimum), of 4, and of 1 (a stratum of one VM, whose crossings must persist); and the pooled
    sequence of a rollout's shadows (25 strata of 2: 50 rows). ``one_shadow_unconfirmed``: one-shadow strata
    whose crossings count at once (``transient_minutes`` 0), what the confirmation is measured against."""
    d = design or SequentialDesign()
    pooled = ROLLOUT_STRATA * 2
    return {"design": d.model_dump(mode="json"),
            "good": [false_alarms(d, strata, seed=seed, rows=r) for r in rows],
            "pooled": false_alarms(d, max(1000, strata // 2), seed=seed, rows=pooled),
            "one_shadow_unconfirmed": false_alarms(d.model_copy(update={"transient_minutes": 0.0}), strata,
                                                   seed=seed, rows=1),
            "bad": [power(d, e, max(200, strata // 4), seed=seed + 1 + i, rows=r)
                    for r in rows for i, e in enumerate(TYPICAL_EFFECTS)]}


def one_shadow_figures(result: dict[str, Any]) -> str:
    """bench/README.md's sentence on the one-shadow confirmation, from a results file (a test holds them equal)."""
    one = next(g for g in result["good"] if g["rows"] == 1)
    cpu = {b["rows"]: b["median_detection_minute"] for b in result["bad"] if b["effect"] == "cpu +24 points"}
    return (f"that takes the false alarms from {result['one_shadow_unconfirmed']['false_alarms']} "
            f"(`one_shadow_unconfirmed`) to {one['false_alarms']}, and costs one-shadow strata detection time: a "
            f"CPU rise of 24 points is shown at a median bake minute {cpu[1]:g} against {cpu[2]:g} for two shadows")


RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "sequential.json"


def main() -> None:
    """Write the operating characteristics of the default design to bench/results/sequential.json."""
    RESULTS.write_text(json.dumps(operating_characteristics(), indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
