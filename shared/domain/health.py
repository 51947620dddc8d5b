"""Which changed production VMs are failing, from what telemetry shows, with the reason per VM."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .model import ApplyResult, ApplyStatus, SignalFrame
from .policy import RolloutPolicy

MEMORY_EXHAUSTED_PCT = 2.0
MIN_ERROR_RATE = 1.0
MAX_LOAD_SCALE = 3.0


@dataclass(frozen=True)
class Baseline:
    """A VM's own rates just before the change reached it (None where telemetry had no point)."""

    errors: float | None = None
    cpu: float | None = None


@dataclass(frozen=True)
class Baselines:
    """Every VM's :class:`Baseline` as columns aligned with a frame's rows (NaN where None): a 10,000-VM watch
    looks at every changed VM hundreds of times, and one object per VM per look was a tenth of its checks."""

    errors: NDArray[np.float64]
    cpu: NDArray[np.float64]

    @classmethod
    def of(cls, rates: Iterable[tuple[float | None, float | None]]) -> Baselines:
        """From each VM's (errors, cpu) in the frame's row order."""
        pairs = list(rates)
        return cls(np.array([np.nan if e is None else e for e, _ in pairs], dtype=np.float64),
                   np.array([np.nan if c is None else c for _, c in pairs], dtype=np.float64))

    @classmethod
    def aligned(cls, vm_ids: Sequence[str], by_vm: Mapping[str, Baseline]) -> Baselines:
        return cls.of((b.errors, b.cpu) for b in (by_vm.get(v) or Baseline() for v in vm_ids))


def own_error_rates(baselines: Baselines, cpu_now: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each VM's own tolerable error rate now: its pre-change rate (at least ``MIN_ERROR_RATE``) scaled by how
    much busier it is now than before (errors follow traffic; CPU stands for traffic), within 1..MAX_LOAD_SCALE;
    unscaled where either CPU figure is unknown (or the old one is 0)."""
    errors = np.where(np.isnan(baselines.errors), 0.0, baselines.errors)
    known = ~np.isnan(baselines.cpu) & (baselines.cpu != 0.0) & ~np.isnan(cpu_now)
    with np.errstate(over="ignore"):  # a tiny old CPU figure: the ratio is capped below anyway
        ratio = cpu_now / np.where(known, baselines.cpu, 1.0)
    scale = np.where(known, np.minimum(MAX_LOAD_SCALE, np.maximum(1.0, ratio)), 1.0)
    own: NDArray[np.float64] = np.maximum(errors, MIN_ERROR_RATE) * scale
    return own


def failing_vms(frame: SignalFrame, baselines: Mapping[str, Baseline] | Baselines, applies: list[ApplyResult],
                policy: RolloutPolicy, peer_error_rate: float | None = None) -> dict[str, str]:
    """Return ``{vm_id: reason}`` for each VM in ``frame`` that is failing now.

    A VM fails when its apply did not succeed; when its health probe failed in at least
    ``unhealthy_probe_minutes`` of the last ``health_window_minutes`` (down) or ``flap_failures`` of the last
    ``flap_window_minutes`` (flapping); when its memory is exhausted; or when the median of its error-log
    rate over the last ``error_window_minutes`` exceeds ``error_rate_factor`` times both its own pre-change
    rate, scaled by how much busier it is now (errors follow traffic; CPU stands for traffic, the factor
    kept within 1..MAX_LOAD_SCALE), and ``peer_error_rate`` (the median rate of VMs still on the old
    configuration, when there are any). A missing point is never a failure, a median ignores a short benign
    burst, and the untouched peers follow the time of day without being raised by the change itself.
    """
    out: dict[str, str] = {}
    for a in applies:
        if a.status is not ApplyStatus.OK:
            out[a.vm_id] = f"apply {a.status.value} (exit {a.exit_code}) after {a.duration_s:.0f}s"
    if not frame.vm_ids or frame.width == 0:
        return out
    health = frame.signals["health_ok"]
    w = min(policy.health_window_minutes, frame.width)
    fw = min(policy.flap_window_minutes, frame.width)
    ew = min(policy.error_window_minutes, frame.width)
    down = np.sum(health[:, -w:] == 0.0, axis=1)
    flaps = np.sum(health[:, -fw:] == 0.0, axis=1)
    errors = frame.signals["error_count"][:, -ew:]
    with warnings.catch_warnings():  # all-NaN rows (metric gaps) give NaN, which is what we want
        warnings.simplefilter("ignore", RuntimeWarning)
        err_median = np.nanmedian(errors, axis=1)
    peers = np.nan if peer_error_rate is None else peer_error_rate
    mem = frame.signals["mem_available_pct"]
    seen = ~np.isnan(mem)
    last = mem.shape[1] - 1 - np.argmax(seen[:, ::-1], axis=1)
    mem_last = np.where(seen.any(axis=1), mem[np.arange(mem.shape[0]), last], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        cpu_now = np.nanmedian(frame.signals["cpu_pct"][:, -ew:], axis=1)
    columns = baselines if isinstance(baselines, Baselines) else Baselines.aligned(frame.vm_ids, baselines)
    if columns.errors.shape != (len(frame.vm_ids),) or columns.cpu.shape != (len(frame.vm_ids),):
        raise ValueError(f"baselines for {columns.errors.shape} VMs, frame of {len(frame.vm_ids)}")
    own = own_error_rates(columns, cpu_now)
    reference = np.maximum(own, peers if not np.isnan(peers) else MIN_ERROR_RATE)
    unhealthy = down >= policy.unhealthy_probe_minutes
    flapping = flaps >= policy.flap_failures
    exhausted = ~np.isnan(mem_last) & (mem_last <= MEMORY_EXHAUSTED_PCT)
    noisy = ~np.isnan(err_median) & (err_median > policy.error_rate_factor * reference)
    for i in (int(x) for x in np.nonzero(unhealthy | flapping | exhausted | noisy)[0]):
        vm = frame.vm_ids[i]
        if vm in out:
            continue
        if unhealthy[i]:
            out[vm] = f"health probe failed {int(down[i])} of the last {w} min (>= {policy.unhealthy_probe_minutes})"
        elif flapping[i]:
            out[vm] = f"health probe flapping: failed {int(flaps[i])} of the last {fw} min (>= {policy.flap_failures})"
        elif exhausted[i]:
            out[vm] = f"available memory {mem_last[i]:.1f}% <= {MEMORY_EXHAUSTED_PCT}%"
        else:
            ref = f"max(load-scaled pre-change {own[i]:.1f}, untouched peers {peers:.1f})" if not np.isnan(peers) \
                else f"load-scaled pre-change {own[i]:.1f}"
            out[vm] = (f"error-log rate median {err_median[i]:.1f}/min over {ew} min > {policy.error_rate_factor:g} x "
                       f"{ref}/min")
    return out
