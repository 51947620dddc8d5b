"""Capacity that follows the evidence: after each wave's check, hold as many borrowed instances as the rollbacks
still expected need. Instances borrowed ahead of expected failures go back once the VMs they were for have passed
their wave's check; later scale-outs forecast rollbacks from the rollback rate seen so far."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .. import observability
from ..bootstrap import Services
from ..domain.decisions import Decision, forecast_rollbacks, settle_capacity
from .activities import _demand, _Rollout, _short
from .idempotency import capacity_target


def settle_capacity_after_wave(svc: Services, payload: dict[str, Any]) -> dict[str, Any]:
    """Scale each target to what the rollbacks still expected need (absolute targets: safe to run twice)."""
    r = _Rollout(svc, payload["rollout_id"])
    items = r.vms()
    at_risk = set(r.record.get("at_risk", []))
    by_set: dict[str, list[str]] = defaultdict(list)
    for vm_id, v in items.items():
        by_set[v["info"]["scale_set"]].append(vm_id)
    extra = dict(r.record.get("extra", {}))
    decisions: list[Decision] = []
    for target in r.record["request"]["targets"]:
        members = by_set.get(target.rsplit("/", 1)[-1], [])
        if not members:
            continue
        changed = [k for k in members if "apply" in items[k]]
        rolled = [k for k in changed if items[k].get("rollback")]
        pending = sum(1 for k in rolled if items[k]["rollback"].get("state") == "queued")
        to_change = [k for k in members if "apply" not in items[k] and not items[k].get("excluded")]
        by_risk = sum(items[k].get("risk") or 0.0 for k in to_change if k in at_risk)
        expected, basis = forecast_rollbacks(len(changed), len(rolled), len(to_change), by_risk)
        now_extra = int(extra.get(target, 0))
        if expected <= 0 and now_extra == 0:
            continue
        demand, serving = _demand(r, [k for k in members if not items[k].get("rollback")])
        d = settle_capacity(target.rsplit("/", 1)[-1], demand, serving, expected, basis, now_extra, pending, r.policy)
        if d is None:
            continue
        before = svc.fleet.capacity(target)
        after = capacity_target(r.record, target, d.data["extra_total"])
        svc.fleet.set_capacity(target, after)
        observability.capacity_changed(r.id, _short(target), before=before, after=after, reason=d.reason)
        extra[target] = d.data["extra_total"]
        decisions.append(d)
    r.update(extra=extra)
    r.decide(decisions)
    return {"extra": extra}
