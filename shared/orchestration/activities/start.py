"""Start, control and end: inventory and shadow plan, the target leases, the approval gate, an operator's abort,
and the record of how the rollout ended."""

from __future__ import annotations

from datetime import timedelta

from ...domain.control import gate_outcome, on_busy_targets
from ...domain.decisions import Decision
from ...domain.guest import missing_prerequisites
from ...domain.kinds import DecisionKind
from ...domain.model import Config
from ...domain.policy import RolloutPolicy
from ...domain.request import parse_request
from ...domain.sampling import plan_shadow_sample
from ...services import Services
from ..chunks import chunk_count
from ..repository import RolloutRepository, Step
from ..state import (
    Abort,
    AbortInput,
    Approval,
    ClaimResult,
    FinishInput,
    FinishResult,
    GateInput,
    GateOutcome,
    GateResult,
    HaltResult,
    RolloutPhase,
    RolloutRecord,
    RolloutRef,
    RolloutState,
    StartInput,
    StartResult,
    VmItem,
)
from .cleanup import ensure_record
from .common import Rollout, publish_outcome


def _started(record: RolloutRecord) -> StartResult:
    return StartResult(rollout_id=record.rollout_id, vms=record.vm_count, strata=record.strata,
                       shadow_chunks=record.shadow_chunks, policy=record.policy, refused=record.refused)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _guest_refusal(svc: Services, targets: list[str]) -> Decision | None:
    try:
        return missing_prerequisites(svc.fleet.guest_extensions(targets))
    except NotImplementedError as exc:  # fail closed: unchecked prerequisites are missing ones
        return Decision(DecisionKind.REFUSED, f"guest prerequisites could not be checked: {exc}")


def start_rollout(svc: Services, payload: StartInput) -> StartResult:
    """Validate the request, take the inventory and plan the shadow pool. Changes no VM."""
    req = parse_request(payload.request)
    repo = RolloutRepository(svc.store, req.rollout_id)
    existing = repo.record()
    if existing is not None:
        return _started(existing)  # a re-run: the record is written last, so everything else is there
    policy = RolloutPolicy().with_overrides(req.policy)
    vms = svc.fleet.inventory(req.targets)
    now = svc.now()
    strata = sorted({vm.stratum for vm in vms})
    sample = plan_shadow_sample(vms, policy, salt=req.rollout_id)
    refusal = _guest_refusal(svc, req.targets)
    repo.put_vms({vm.vm_id: VmItem(info=vm, stratum=vm.stratum.key, config=Config.OLD) for vm in vms})
    repo.put_plans(sample.plans)
    record = RolloutRecord(
        rollout_id=req.rollout_id, request=req, policy=policy, started_at=now, phase=RolloutPhase.SHADOW_POOL,
        vm_count=len(vms), strata=len(strata), shadow_chunks=chunk_count(len(sample.plans)),
        original_capacity={t: svc.fleet.capacity(t) for t in req.targets},
        refused=refusal.reason if refusal is not None else None)
    repo.put_record(record)
    r = Rollout(svc, req.rollout_id, Step.START_ROLLOUT)
    r.decide([Decision(DecisionKind.INVENTORY,
                       f"{len(vms)} VMs in {_plural(len(req.targets), 'scale set')}, {len(strata)} strata"),
              Decision(DecisionKind.PLAN_SHADOWS, sample.reason, data={"shadows": len(sample.plans)}),
              *([refusal] if refusal is not None else [])])
    return _started(record)


def claim_targets(svc: Services, payload: RolloutRef) -> ClaimResult:
    """Take the leases of the target scale sets, or say how long to wait (queue) or why not (refuse)."""
    r = Rollout(svc, payload.rollout_id, Step.CLAIM_TARGETS)
    targets = r.record.request.targets
    got = svc.leases.acquire(targets, r.id, now=r.now)
    if got.acquired:
        if not r.record.claimed:
            r.update(claimed=True, claimed_at=r.now)
        # written at the minute of the claim, so a re-run (a worker that died between the two writes, or after
        # both) rewrites the same row: the decision is never lost and never doubled
        at = r.record.claimed_at or r.now
        waited = r.minute(at) - r.minute(r.record.queued_since or at)
        sets = _plural(len(targets), "target scale set")
        r.decide([Decision(DecisionKind.CLAIMED, f"{sets} leased to this rollout"
                           + (f" after waiting {waited:.0f} minutes" if waited > 0 else ""))], at=at)
        return ClaimResult(claimed=True)
    since = r.record.queued_since or r.now
    waited = (r.now - since) / timedelta(minutes=1)
    d = on_busy_targets([(c.resource, c.holder, c.since) for c in got.conflicts], r.policy, waited)
    r.update(queued_since=since, phase=RolloutPhase.WAITING_FOR_TARGETS if d.kind is DecisionKind.QUEUED
             else RolloutPhase.REFUSED)
    r.decide([d])
    return ClaimResult(claimed=False, retry_minutes=d.data["retry_minutes"], reason=d.reason)


def resolve_gate(svc: Services, payload: GateInput) -> GateResult:
    """Record how the approval gate ended and whether production may start."""
    r = Rollout(svc, payload.rollout_id, Step.RESOLVE_GATE)
    event = payload.event.model_dump(exclude_none=True) if payload.event is not None else None
    d = gate_outcome(payload.outcome.value, event, r.policy, (r.now - payload.opened_at) / timedelta(minutes=1))
    proceed = bool(d.data["proceed"])
    by = str(d.data["by"])
    approval = Approval(outcome=payload.outcome, by=by, reason=d.reason)
    if proceed:
        r.update(approval=approval)
    else:
        aborted = Abort(by=by, reason=d.reason) if payload.outcome is GateOutcome.ABORTED else r.record.aborted
        r.update(approval=approval, halted=True, phase=RolloutPhase.HALTED_BEFORE_PRODUCTION, aborted=aborted)
    r.decide([d])
    return GateResult(proceed=proceed, reason=d.reason)


def abort_rollout(svc: Services, payload: AbortInput) -> HaltResult:
    """An operator aborted: no further VM is changed; what was changed stays watched and recoverable."""
    r = Rollout(svc, payload.rollout_id, Step.ABORT_ROLLOUT)
    by = (payload.event.by if payload.event is not None else None) or "unknown"
    note = payload.event.reason if payload.event is not None else None
    reason = f"aborted by {by} {payload.where}" + (f": {note}" if note else "")
    phase = RolloutPhase.HALTED_IN_PRODUCTION if payload.in_production else RolloutPhase.HALTED_BEFORE_PRODUCTION
    r.update(halted=True, phase=phase, aborted=Abort(by=by, reason=reason))
    r.decide([Decision(DecisionKind.ABORTED, reason)])
    publish_outcome(r, "aborted", reason, by=by)
    return HaltResult(halt=True, reason=reason)


def finish(svc: Services, payload: FinishInput) -> FinishResult:
    """Record the end: every VM's believed configuration, the halt, what was left behind, and a summary.

    The leases are released before, by ``release_leases`` (retried on its own)."""
    ensure_record(svc, payload)  # a rollout that failed before start_rollout recorded it
    r = Rollout(svc, payload.rollout_id, Step.FINISH)
    items = r.vms()
    error, refused = payload.error, payload.refused
    halted = r.record.halted or bool(error)  # an error stops the rollout part-way: a halt
    on_new = sum(1 for v in items.values() if v.config is Config.NEW)
    on_old = sum(1 for v in items.values() if v.config is Config.OLD)
    rolled_back = sum(1 for v in items.values() if v.rollback is not None)
    state = (RolloutState.FAILED if error else RolloutState.REFUSED if refused
             else RolloutState.ABORTED if r.record.aborted else RolloutState.HALTED if halted
             else RolloutState.COMPLETED)
    r.update(state=state, phase=RolloutPhase.DONE, finished_at=r.now, error=error, refused=refused, halted=halted)
    reason = (f"rollout {state.value}: {on_new} VMs on the new config, "
              f"{on_old} on the old config ({rolled_back} of them rolled back)"
              + (f"; error: {error}" if error else "") + (f"; {refused}" if refused else ""))
    leaks = list(payload.leaks)
    r.decide([Decision(DecisionKind.LEAK, f"left for the janitor: {x}") for x in leaks]
             + [Decision(DecisionKind.FINISHED, reason)])
    publish_outcome(r, "finished", reason, state=state.value, on_new_config=on_new, on_old_config=on_old,
                    rolled_back=rolled_back, halted=halted, leaks=leaks)
    return FinishResult(state=state, halted=halted, on_new_config=on_new, rolled_back=rolled_back)
