"""Which changed production VMs are failing, from what telemetry shows, with the reason per VM."""

from __future__ import annotations

import numpy as np

from .model import ApplyResult, ApplyStatus, SignalFrame
from .policy import RolloutPolicy

MEMORY_EXHAUSTED_PCT = 2.0
MIN_ERROR_RATE = 1.0


def failing_vms(frame: SignalFrame, baseline_errors: dict[str, float], applies: list[ApplyResult],
                policy: RolloutPolicy) -> dict[str, str]:
    """Return ``{vm_id: reason}`` for each VM in ``frame`` that is failing now.

    A VM fails when its apply did not succeed, when its health probe failed in at least
    ``unhealthy_probe_minutes`` of the last ``health_window_minutes`` (a missing point is not a failure),
    when its memory is exhausted, or when its error-log rate over that window stays above
    ``error_rate_factor`` times its own pre-change rate.
    """
    out: dict[str, str] = {}
    for a in applies:
        if a.status is not ApplyStatus.OK:
            out[a.vm_id] = f"apply {a.status.value} (exit {a.exit_code}) after {a.duration_s:.0f}s"
    if not frame.vm_ids or frame.width == 0:
        return out
    w = min(policy.health_window_minutes, frame.width)
    health = frame.signals["health_ok"][:, -w:]
    fails = np.sum(health == 0.0, axis=1)
    errors = frame.signals["error_count"][:, -w:]
    mem = frame.signals["mem_available_pct"][:, -w:]
    with np.errstate(all="ignore"):
        err_min = np.where(np.all(np.isnan(errors), axis=1), np.nan, np.nanmin(np.where(np.isnan(errors), np.inf,
                                                                                          errors), axis=1))
        mem_last = np.array([r[~np.isnan(r)][-1] if np.any(~np.isnan(r)) else np.nan for r in mem])
    for i, vm in enumerate(frame.vm_ids):
        if vm in out:
            continue
        if fails[i] >= policy.unhealthy_probe_minutes:
            out[vm] = f"health probe failed {int(fails[i])} of the last {w} min (>= {policy.unhealthy_probe_minutes})"
            continue
        if not np.isnan(mem_last[i]) and mem_last[i] <= MEMORY_EXHAUSTED_PCT:
            out[vm] = f"available memory {mem_last[i]:.1f}% <= {MEMORY_EXHAUSTED_PCT}%"
            continue
        base = max(baseline_errors.get(vm, MIN_ERROR_RATE), MIN_ERROR_RATE)
        if not np.isnan(err_min[i]) and err_min[i] > policy.error_rate_factor * base:
            out[vm] = (f"error-log rate >= {err_min[i]:.0f}/min for {w} min > {policy.error_rate_factor:g} x "
                       f"pre-change {base:.1f}/min")
    return out
