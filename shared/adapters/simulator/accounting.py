"""Ground-truth accounting of one run: the contract's outcome object.

This is the only code that reads the truth (who was affected, when they were impaired). Strategies never
call it; the CLI calls it once the strategy has finished.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from .prices import hourly_price
from .rng import Stream, uniform

if TYPE_CHECKING:
    from .world import FleetWorld

DEMAND_UTILISATION = 0.7
_TIME_CHUNK = 120


def _r(x: float, nd: int = 2) -> float:
    return float(round(x, nd))


def account(world: FleetWorld, *, strategy: str, believed: dict[str, str], halted: bool, finished_at: float,
            decisions: list[dict[str, Any]]) -> dict[str, Any]:
    T = world.t
    n = world.n_production
    horizon = float(world.scenario.horizon_minutes)
    apply_at = T["apply_at"][:n]
    touched = ~np.isnan(apply_at)
    window_end = np.where(touched, apply_at + horizon, -np.inf)
    end = max(finished_at, float(window_end.max()) if touched.any() else 0.0, world.last_production_action)
    restore_done = np.nan_to_num(T["restore_done"][:n], nan=np.inf)
    restored = restore_done <= end
    imp_at = T["imp_at"][:n]
    # impaired minutes inside each touched VM's watch window
    lo = np.maximum(imp_at, np.nan_to_num(apply_at, nan=np.inf))
    hi = np.minimum(np.minimum(restore_done, window_end), end)
    impaired_minutes = np.where(touched, np.clip(hi - lo, 0.0, None), 0.0)
    impaired_minutes = np.nan_to_num(impaired_minutes, nan=0.0, posinf=0.0)
    impaired_at_end = touched & (imp_at <= end) & ~restored
    truth_new = touched & ~restored

    counts = {"total": n, "on_new_config": 0, "rolled_back": 0, "never_touched": 0, "failed_unrecovered": 0,
              "unknown_state": 0}
    for i in range(n):
        vm = world.ids[i]
        record = believed.get(vm)
        truth = "new" if truth_new[i] else "old"
        if impaired_at_end[i]:
            counts["failed_unrecovered"] += 1
        elif (touched[i] and record is None) or (record is not None and record != truth):
            counts["unknown_state"] += 1
        elif touched[i] and restored[i]:
            counts["rolled_back"] += 1
        elif touched[i]:
            counts["on_new_config"] += 1
        else:
            counts["never_touched"] += 1

    if not touched.any():
        outcome = "halted_before_production"
    elif counts["failed_unrecovered"] + counts["unknown_state"] > 0:
        outcome = "failed"
    elif halted:
        outcome = "halted_in_production"
    elif counts["rolled_back"] > 0:
        outcome = "completed_with_rollbacks"
    elif counts["never_touched"] > 0:
        outcome = "completed_with_exclusions"
    else:
        outcome = "completed"

    duration = world.last_production_action
    shortfall, extra_minutes, max_extra = _capacity(world, end, imp_at, restore_done)
    fleet_cost = sum(hourly_price(world.sku_of(i), world.region, spot=False) for i in range(n)) / 60.0 * duration
    shadow_cost = 0.0
    strata_covered: set[tuple[int, int, int, int]] = set()
    evictions = 0
    for row in world.shadow_rows:
        created = world.shadow_created_at[row]
        gone = min(float(T["exists_to"][row]), end)
        shadow_cost += world.spot_price(row) * max(0.0, gone - created) / 60.0
        if row not in world._deleted and T["exists_to"][row] <= end:
            evictions += 1
    strata_total = {(int(T["ss"][i]), int(T["sku"][i]), int(T["img"][i]), int(T["zone"][i])) for i in range(n)}
    for stratum, covered in world.coverage.items():
        if covered:
            strata_covered.add(stratum)
    return {
        "scenario": world.scenario.name,
        "seed": world.seed,
        "strategy": strategy,
        "outcome": outcome,
        "vms": counts,
        "production_vms_impaired": int(np.sum(impaired_minutes > 0)),
        "impaired_vm_minutes": _r(float(impaired_minutes.sum()), 1),
        "shadow": {"instances": len(world.shadow_rows), "strata_total": len(strata_total),
                   "strata_covered": len(strata_covered & strata_total), "evictions": evictions,
                   "cost_usd": _r(shadow_cost)},
        "fleet_cost_usd": _r(fleet_cost),
        "snapshots_taken": world.snapshots_taken,
        "capacity": {"max_extra_instances": max_extra, "extra_vm_minutes": _r(extra_minutes, 1),
                     "shortfall_vm_minutes": _r(shortfall, 1)},
        "duration_minutes": _r(duration, 1),
        "decisions": decisions,
    }


def affected_if_applied(world: FleetWorld, idx: NDArray[np.int64],
                        utilisation: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Which rows ``idx`` the change would affect if it reached them at the given utilisation.

    The same three conditions as :meth:`FleetWorld.apply` (``when`` match, the per-(effect, VM) draw against
    ``probability``, ``load_above`` at apply). Read by the ``oracle`` strategy and the benchmark's truth only.
    """
    idx = np.asarray(idx, dtype=np.int64)
    out = np.zeros(len(idx), dtype=bool)
    keys = world.t["key"][idx]
    matches = world.effect_matches(idx, np.asarray(utilisation, dtype=float))
    for e, (eff, m) in enumerate(zip(world.effects, matches, strict=True)):
        out |= m & (uniform(world.seed, Stream.AFFECT, e, keys) < eff.probability)
    return out


def _capacity(world: FleetWorld, end: float, imp_at: np.ndarray, restore_done: np.ndarray) -> tuple[float, float, int]:
    """Integrate max(0, demand - serving) and the extra instances over [0, end) at one-minute resolution."""
    T = world.t
    n = world.n_production
    minutes = math.ceil(end)
    if minutes <= 0:
        return 0.0, 0.0, 0
    # a VM does not serve from the earlier of impairment and restore start, until its restore is done
    rs = np.nan_to_num(T["restore_start"][:n], nan=np.inf)
    out_from = np.minimum(np.where(imp_at < restore_done, imp_at, np.inf), rs)
    out_to = restore_done
    not_serving = np.zeros(minutes + 2)
    a = np.clip(np.ceil(out_from - 0.5), 0, minutes + 1)
    b = np.clip(np.ceil(out_to - 0.5), 0, minutes + 1)
    valid = np.isfinite(out_from) & (a < b)
    np.add.at(not_serving, a[valid].astype(int), 1.0)
    np.add.at(not_serving, b[valid].astype(int), -1.0)
    not_serving = np.cumsum(not_serving)[:minutes]
    extra = np.zeros(minutes + 2)
    for st in world.scale_sets.values():
        for up, down in st.extra:
            ua, db = np.clip(math.ceil(up - 0.5), 0, minutes + 1), np.clip(math.ceil(min(down, end) - 0.5), 0,
                                                                            minutes + 1)
            if ua < db:
                extra[int(ua)] += 1.0
                extra[int(db)] -= 1.0
    extra = np.cumsum(extra)[:minutes]
    idx = np.arange(n, dtype=np.int64)
    shortfall = 0.0
    for a0 in range(0, minutes, _TIME_CHUNK):
        mins = np.arange(a0, min(a0 + _TIME_CHUNK, minutes))
        demand = world.utilisation(idx, mins).sum(axis=0) / DEMAND_UTILISATION
        serving = n - not_serving[mins] + extra[mins]
        shortfall += float(np.clip(demand - serving, 0.0, None).sum())
    return shortfall, float(extra.sum()), int(extra.max()) if extra.size else 0
