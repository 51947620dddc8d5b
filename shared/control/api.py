"""Operator control: status, approve, abort, list. Handlers return a :class:`Reply` (HTTP status and JSON body).

Approve and abort are Durable external events (``approve``, ``abort``) raised on the rollout's instance; the
orchestrator decides what they mean where it stands and records the decision (see shared/orchestration/rollout.py).
Status combines the instance's runtime and custom status (phase, shadow results, wave progress, rollbacks,
capacity) with a summary read from the rollout store (per-stratum predictions, rollbacks by state, decisions).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ..bootstrap import Services
from ..domain.request import RolloutRequest, instance_id_for, rollout_id_of
from ..orchestration.rollout import ROLLOUT
from ..ports import Orchestrations
from .auth import Action, Principal, Refusal, authorise, four_eyes
from .view import rollout_view

MAX_STRATA = 200
RECENT_DECISIONS = 20


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def refused(refusal: Refusal, rollout_id: str | None = None) -> Reply:
        body: dict[str, Any] = {"reason": refusal.reason, "code": refusal.code}
        if rollout_id is not None:
            body["rollout_id"] = rollout_id
        return Reply(refusal.status, body)


def _phase(custom: Any) -> str | None:
    return custom.get("phase") if isinstance(custom, dict) else None


def summary(svc: Services, rollout_id: str) -> dict[str, Any]:
    """What the rollout store knows: state, per-stratum predictions, waves, rollbacks, capacity, decisions."""
    record = svc.store.get_rollout(rollout_id)
    if record is None:
        return {}
    vms = svc.store.get_items(rollout_id, "vm")
    verdicts = svc.store.get_items(rollout_id, "verdict")
    strata: dict[str, dict[str, Any]] = defaultdict(lambda: {"vms": 0, "skipped": 0, "risk_sum": 0.0, "risk_n": 0,
                                                             "on_new_config": 0, "rolled_back": 0})
    rollbacks: dict[str, int] = defaultdict(int)
    for v in vms.values():
        s = strata[v.get("stratum", "?")]
        s["vms"] += 1
        s["skipped"] += int(bool(v.get("skipped")))
        if v.get("risk") is not None:
            s["risk_sum"] += float(v["risk"])
            s["risk_n"] += 1
        s["on_new_config"] += int(v.get("config") == "new")
        if v.get("rollback"):
            s["rolled_back"] += 1
            rollbacks[v["rollback"].get("state", "queued")] += 1
    per_stratum = []
    for key in sorted(strata)[:MAX_STRATA]:
        s = strata[key]
        verdict = verdicts.get(key, {})
        per_stratum.append({"stratum": key, "label": verdict.get("label", key), "judge": verdict.get("phase"),
                            "evidence": verdict.get("reason"), "shadows": verdict.get("shadows_observed"),
                            "vms": s["vms"], "skipped": s["skipped"],
                            "mean_predicted_failure": round(s["risk_sum"] / s["risk_n"], 4) if s["risk_n"] else None,
                            "on_new_config": s["on_new_config"], "rolled_back": s["rolled_back"]})
    waves = svc.store.get_items(rollout_id, "wave")
    decisions = svc.store.decisions(rollout_id)
    return {"state": record.get("state"), "phase": record.get("phase"), "halted": bool(record.get("halted")),
            "aborted": record.get("aborted"), "approval": record.get("approval"), "refused": record.get("refused"),
            "error": record.get("error"), "started_at": record.get("started_at"),
            "finished_at": record.get("finished_at"), "request": record.get("request"),
            "threshold": record.get("threshold"), "strata": per_stratum, "strata_total": len(strata),
            "waves": {"planned": len(waves), "vms": sum(len(w.get("vm_ids", [])) for w in waves.values())},
            "rollbacks": dict(rollbacks), "capacity": {"extra": record.get("extra", {})},
            "decisions": decisions[-RECENT_DECISIONS:]}


async def rollout_status(rollout_id: str, *, orch: Orchestrations, svc: Services) -> Reply:
    st = await orch.status(instance_id_for(rollout_id))
    if st is None:
        return Reply(404, {"rollout_id": rollout_id, "reason": f"no rollout {rollout_id}"})
    custom = st.custom_status if isinstance(st.custom_status, dict) else {}
    return Reply(200, {"rollout_id": rollout_id, "instance_id": st.instance_id, "runtime_status": st.runtime_status,
                       "phase": _phase(custom), "created_at": st.created_at.isoformat() if st.created_at else None,
                       "last_updated_at": st.last_updated_at.isoformat() if st.last_updated_at else None,
                       "custom_status": custom, "output": st.output, "rollout": summary(svc, rollout_id),
                       "view": _view(svc, rollout_id, custom)})


def _view(svc: Services, rollout_id: str, custom: dict[str, Any]) -> dict[str, Any] | None:
    approval = custom.get("approval")
    view = rollout_view(svc.store, rollout_id, svc.now(),
                        gate_opened_at=approval.get("opened_at") if isinstance(approval, dict) else None,
                        watch=(custom.get("watch_started_at"), custom.get("watch_until")))
    return view.model_dump(mode="json") if view is not None else None


async def _event(rollout_id: str, name: str, *, actor: Principal, note: str | None, orch: Orchestrations,
                 now: datetime, allowed_phases: set[str] | None) -> Reply:
    iid = instance_id_for(rollout_id)
    st = await orch.status(iid)
    if st is None:
        return Reply(404, {"rollout_id": rollout_id, "reason": f"no rollout {rollout_id}"})
    phase = _phase(st.custom_status)
    if st.terminal:
        return Reply(409, {"rollout_id": rollout_id, "reason": f"rollout {rollout_id} has ended "
                           f"({st.runtime_status}, phase {phase}); nothing to {name}"})
    if allowed_phases is not None and phase not in allowed_phases:
        return Reply(409, {"rollout_id": rollout_id, "phase": phase,
                           "reason": f"rollout {rollout_id} is not awaiting approval (phase {phase})"})
    data = {**actor.event(), "reason": note, "at": now.isoformat()}
    await orch.raise_event(iid, name, data)
    return Reply(202, {"rollout_id": rollout_id, "event": name, "by": actor.name, "phase": phase,
                       "reason": f"{name} sent to rollout {rollout_id} (phase {phase})"})


def _four_eyes(rollout_id: str, actor: Principal, svc: Services) -> Refusal | None:
    """Four eyes against the rollout's recorded request; a record that cannot be read fails closed."""
    record = svc.store.get_rollout(rollout_id)
    if record is None:
        return None  # not started yet: the phase check refuses the approval
    policy = record.get("policy")
    if isinstance(policy, dict) and policy.get("four_eyes", True) is False:
        return None
    try:
        request = RolloutRequest.model_validate(record.get("request"))
    except ValidationError:
        return Refusal(status=403, code="forbidden", reason=f"four eyes: the request of {rollout_id} cannot be "
                       "read, so who asked for it is unknown")
    return four_eyes(actor, request.requester_identities())


async def approve(rollout_id: str, *, actor: Principal, note: str | None, orch: Orchestrations, svc: Services,
                  now: datetime) -> Reply:
    """Approve a rollout waiting at its gate: only with the app role Rollout.Approve, never by whoever asked
    for it (policy ``four_eyes``), and refused (409) in any other phase, so approvals are never stale."""
    refusal = authorise(actor, Action.APPROVE) or _four_eyes(rollout_id, actor, svc)
    if refusal is not None:
        return Reply.refused(refusal, rollout_id)
    return await _event(rollout_id, "approve", actor=actor, note=note, orch=orch, now=now,
                        allowed_phases={"awaiting_approval"})


async def abort(rollout_id: str, *, actor: Principal, note: str | None, orch: Orchestrations,
                now: datetime) -> Reply:
    """Ask a running rollout to stop before it changes another VM (app role Rollout.Operate)."""
    refusal = authorise(actor, Action.ABORT)
    if refusal is not None:
        return Reply.refused(refusal, rollout_id)
    return await _event(rollout_id, "abort", actor=actor, note=note, orch=orch, now=now, allowed_phases=None)


async def list_rollouts(*, orch: Orchestrations, limit: int = 50, created_from: datetime | None = None) -> Reply:
    """Recent top-level rollouts, newest first (waves, watches and recoveries are left out)."""
    found = await orch.list(name=ROLLOUT, created_from=created_from, limit=limit)
    items = [{"rollout_id": rollout_id_of(s.instance_id), "instance_id": s.instance_id,
              "runtime_status": s.runtime_status, "phase": _phase(s.custom_status),
              "created_at": s.created_at.isoformat() if s.created_at else None,
              "last_updated_at": s.last_updated_at.isoformat() if s.last_updated_at else None} for s in found]
    return Reply(200, {"rollouts": items, "count": len(items)})
