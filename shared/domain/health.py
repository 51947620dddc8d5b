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
    err_min = np.min(np.where(np.isnan(errors), np.inf, errors), axis=1)
    err_min = np.where(np.isinf(err_min), np.nan, err_min)
    # the last reported point of each row: index of the last non-NaN column
    seen = ~np.isnan(mem)
    last = mem.shape[1] - 1 - np.argmax(seen[:, ::-1], axis=1)
    mem_last = np.where(seen.any(axis=1), mem[np.arange(mem.shape[0]), last], np.nan)
    base = np.array([max(baseline_errors.get(vm, MIN_ERROR_RATE), MIN_ERROR_RATE) for vm in frame.vm_ids])
    unhealthy = fails >= policy.unhealthy_probe_minutes
    exhausted = ~np.isnan(mem_last) & (mem_last <= MEMORY_EXHAUSTED_PCT)
    noisy = ~np.isnan(err_min) & (err_min > policy.error_rate_factor * base)
    for i in np.nonzero(unhealthy | exhausted | noisy)[0]:
        vm = frame.vm_ids[i]
        if vm in out:
            continue
        if unhealthy[i]:
            out[vm] = f"health probe failed {int(fails[i])} of the last {w} min (>= {policy.unhealthy_probe_minutes})"
        elif exhausted[i]:
            out[vm] = f"available memory {mem_last[i]:.1f}% <= {MEMORY_EXHAUSTED_PCT}%"
        else:
            out[vm] = (f"error-log rate >= {err_min[i]:.0f}/min for {w} min > {policy.error_rate_factor:g} x "
                       f"pre-change {base[i]:.1f}/min")
    return out
