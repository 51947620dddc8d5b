"""Capacity: borrow instances ahead of rollbacks so that demand stays served, and give them back after.

Capacity follows the evidence: after each wave's check, ``settle_capacity`` holds as many borrowed instances as
the rollbacks still expected need. Instances borrowed ahead of expected failures go back once the VMs they were
for have passed their wave's check; later scale-outs forecast rollbacks from the rollback rate seen so far.
Capacity is always set to an absolute target (:func:`~..idempotency.capacity_target`): safe to run twice."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import numpy as np

from ... import observability
from ...domain.decisions import (
    Decision,
    cap_at_maximum,
    capacity_refused,
    forecast_rollbacks,
    plan_capacity,
    plan_scale_back,
)
from ...domain.decisions import settle_capacity as plan_settle
from ...domain.errors import CapacityUnavailable
from ...domain.kinds import DecisionKind
from ...services import Services
from ..idempotency import capacity_target
from ..repository import Step
from ..state import BatchRef, CapacityResult, RollbackState, RolloutRef, VmItem
from .common import DEFAULT_UTILISATION, DEMAND_MINUTES, SERVING_MINUTES, Rollout, nanmean_rows, short


def demand(r: Rollout, vm_ids: list[str]) -> tuple[float, int]:
    """VM units needed to keep the given VMs' load at the target utilisation, and how many report."""
    now = r.now
    frame = r.svc.telemetry.signals(vm_ids, now - timedelta(minutes=DEMAND_MINUTES), now)
    cpu = nanmean_rows(frame.signals["cpu_pct"]) / 100.0
    health = nanmean_rows(frame.signals["health_ok"][:, -SERVING_MINUTES:])
    ok = health >= 0.5
    serving = int(np.sum(ok))
    if serving == 0:
        return float(len(vm_ids)), 0
    # a failed VM's traffic lands on the others: demand is what the healthy ones carry, scaled to all
    per_vm = float(np.nanmean(cpu[ok])) if np.any(~np.isnan(cpu[ok])) else DEFAULT_UTILISATION
    return per_vm * len(vm_ids) / r.policy.target_utilisation, serving


def not_serving(r: Rollout, vm_ids: list[str]) -> set[str]:
    now = r.now
    frame = r.svc.telemetry.signals(vm_ids, now - timedelta(minutes=SERVING_MINUTES), now)
    health = nanmean_rows(frame.signals["health_ok"])
    return {v for v, h in zip(vm_ids, health, strict=True) if not h >= 0.5}


def scale_out(r: Rollout, target: str, d: Decision | None, extra: dict[str, int],
              decisions: list[Decision]) -> None:
    """Carry out a capacity decision, if there is one, and remember the instances borrowed.

    A scale-out is first held to the scale set's maximum (:func:`~...domain.decisions.cap_at_maximum`); one ARM
    refuses all the same is recorded and borrows nothing: a capacity that cannot be borrowed never fails the
    rollbacks it was for."""
    if d is None:
        return
    name = short(target)
    held = int(extra.get(target, 0))
    if d.kind is DecisionKind.SCALE_OUT:
        size = r.svc.fleet.size(target)  # one read of the scale set gives both
        d = cap_at_maximum(d, name, int(r.record.original_capacity[target]), size.maximum, held)
        if d.data["extra_total"] == held:  # nothing more may be borrowed: the decision says why
            decisions.append(d)
            return
        before = size.capacity
    else:
        before = r.svc.fleet.capacity(target)
    after = capacity_target(r.record, target, d.data["extra_total"])  # absolute: a second run sets the same
    try:
        r.svc.fleet.set_capacity(target, after)
    except CapacityUnavailable as exc:
        decisions.append(capacity_refused(name, after, held, str(exc)))
        return
    observability.capacity_changed(r.id, name, before=before, after=after, reason=d.reason)
    extra[target] = d.data["extra_total"]
    decisions.append(d)


def cover_at_risk(r: Rollout, items: dict[str, VmItem], at_risk: list[str], extra: dict[str, int],
                  decisions: list[Decision]) -> None:
    """Before the first wave: borrow what the expected failures among the at-risk VMs would take out."""
    by_set: dict[str, list[str]] = defaultdict(list)
    for vm_id, v in items.items():
        by_set[v.info.scale_set].append(vm_id)
    risky = set(at_risk)
    for target in r.record.request.targets:
        name = target.rsplit("/", 1)[-1]
        members = by_set.get(name, [])
        expected = round(sum(items[v].risk or 0.0 for v in members if v in risky))
        if not members or expected <= 0:
            continue
        units, serving = demand(r, members)
        at_risk_here = sum(1 for v in members if v in risky)
        d = plan_capacity(name, units, serving - expected + extra.get(target, 0), expected, extra.get(target, 0),
                          r.policy, basis=f"are expected to fail (predicted risk of {at_risk_here} at-risk VMs)")
        scale_out(r, target, d, extra, decisions)


def reserve_capacity(svc: Services, payload: BatchRef) -> CapacityResult:
    """Scale out ahead of a rollback so that demand stays served while the VMs are restored."""
    r = Rollout(svc, payload.rollout_id, Step.RESERVE_CAPACITY, payload.batch)
    items = r.vms()
    batch = r.repo.batch(payload.batch)
    by_set: dict[str, list[str]] = defaultdict(list)
    for k in batch:
        by_set[items[k].info.scale_set].append(k)
    extra = dict(r.record.extra)
    decisions: list[Decision] = []
    for target in r.record.request.targets:
        name = target.rsplit("/", 1)[-1]
        leaving = by_set.get(name, [])
        if not leaving:
            continue
        members = [k for k, v in items.items() if v.info.scale_set == name]
        gone = set(leaving)
        others = [k for k in members if k not in gone]
        units, _ = demand(r, members)
        serving_others = len(others) - len(not_serving(r, others)) if others else 0
        d = plan_capacity(name, units, serving_others + extra.get(target, 0), len(leaving), extra.get(target, 0),
                          r.policy)
        scale_out(r, target, d, extra, decisions)
    r.update(extra=extra)
    r.decide(decisions)
    return CapacityResult(extra=extra)


def release_capacity(svc: Services, payload: RolloutRef) -> CapacityResult:
    """Give back the instances borrowed for rollbacks once none is pending."""
    r = Rollout(svc, payload.rollout_id, Step.RELEASE_CAPACITY)
    pending = sum(1 for v in r.vms().values() if v.rollback is not None and v.rollback.state is RollbackState.QUEUED)
    extra = dict(r.record.extra)
    decisions = []
    for target, n in sorted(extra.items()):
        d = plan_scale_back(target.rsplit("/", 1)[-1], n, pending)
        if d is not None:
            before = svc.fleet.capacity(target)
            after = capacity_target(r.record, target, 0)  # absolute: back to the capacity before the rollout
            svc.fleet.set_capacity(target, after)
            observability.capacity_changed(r.id, short(target), before=before, after=after, reason=d.reason)
            extra[target] = 0
            decisions.append(d)
    r.update(extra=extra)
    r.decide(decisions)
    return CapacityResult(extra=extra)


def settle_capacity(svc: Services, payload: RolloutRef) -> CapacityResult:
    """Scale each target to what the rollbacks still expected need (absolute targets: safe to run twice)."""
    r = Rollout(svc, payload.rollout_id, Step.SETTLE_CAPACITY)
    items = r.vms()
    at_risk = set(r.record.at_risk)
    by_set: dict[str, list[str]] = defaultdict(list)
    for vm_id, v in items.items():
        by_set[v.info.scale_set].append(vm_id)
    extra = dict(r.record.extra)
    decisions: list[Decision] = []
    for target in r.record.request.targets:
        name = target.rsplit("/", 1)[-1]
        members = by_set.get(name, [])
        if not members:
            continue
        changed = [k for k in members if items[k].apply is not None]
        rolled = [k for k in changed if items[k].rollback is not None]
        pending = sum(1 for k in rolled if (rb := items[k].rollback) is not None and rb.state is RollbackState.QUEUED)
        # a halted rollout changes no further VM: no rollback is to be expected of the VMs it left untouched
        to_change = [] if r.record.halted else [k for k in members if items[k].apply is None
                                                and not items[k].excluded]
        by_risk = sum(items[k].risk or 0.0 for k in to_change if k in at_risk)
        expected, basis = forecast_rollbacks(len(changed), len(rolled), len(to_change), by_risk)
        now_extra = int(extra.get(target, 0))
        if expected <= 0 and now_extra == 0:
            continue
        units, serving = demand(r, [k for k in members if items[k].rollback is None])
        scale_out(r, target, plan_settle(name, units, serving, expected, basis, now_extra, pending, r.policy),
                  extra, decisions)
    r.update(extra=extra)
    r.decide(decisions)
    return CapacityResult(extra=extra)
