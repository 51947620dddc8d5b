"""The rollout orchestrations. They only yield: every decision is made by a pure function in an activity.

    rollout ─┬─ start_rollout (inventory, shadow plan) → claim_targets (lease; queue behind or refuse)
             ├─ create_shadows ×chunks → drive_shadow_load → timer(baseline: short when control twins run)
             │    → apply_to_shadows ×chunks
             ├─ bake (bake_flow): timer(check) → analyse_shadows, until the sequential tests or the halt rule end it
             │    ├─ a look chose VMs to snapshot (at risk; the first wave if asked): snapshot_ahead ×passes meanwhile
             │    └─ ambiguous evidence: add_shadows → create, drive, apply → a shorter bake (bake_flow)
             ├─ decide → (halt) teardown_shadows → discard_snapshots → finish
             ├─ gate, when policy.approval_required: approve | abort | timer → resolve_gate
             ├─ prepare (snapshots of at-risk VMs, rollback queue, capacity)
             ├─ wave ×N (sub-orchestration, risk-adaptive sizes and watches): snapshot_wave ×chunks
             │    → apply_wave ×chunks → timer(min watch) → watch_shadows → [doubt: timer(rest)] → check_production
             │                                 └─ recover (sub-orchestration) when VMs fail → settle_capacity
             ├─ teardown_shadows (the shadows lead production through the waves)
             ├─ production_done (the watch's interval from the waves' leads)
             ├─ watch (sub-orchestration, continue-as-new): timer → check_production → recover
             └─ release_capacity → discard_snapshots (no VM changed) → release_leases → finish;
                on any error: teardown_shadows, release_capacity, discard_snapshots, release_leases, finish(error)

Cleanups (teardown, capacity and lease release) are retried longer; what still fails is recorded as a leak for
the janitor (shared/orchestration/cleanup.py), never raised out of the rollout's error path. A failure of
start_rollout still ends with a record and an outcome event.

An operator's ``abort`` event is raced against the bake's timers, the gate, and each wave: it stops the
rollout before the next VM would be changed (a wave already running finishes and is checked and recovered;
the production watch of changed VMs still runs, since it only restores failing VMs).

Per-VM data never enters a history: activities keep it in the rollout store and return counts.

What overlaps before production, and what does not (docs/operations.md, "Before production"): the production
snapshots a bake look chooses are taken while the bake goes on (bake_flow.Ahead). Shadow creation does not overlap
the inventory and the claim, by choice: measured, those cost no simulated minute (a few reads and a lease write in
Azure) against the shadows' minutes of snapshot, disk and VM, and overlapping them would mean snapshotting a
production disk before its scale set is leased (another rollout may be changing it) or leasing set by set (two
rollouts with overlapping targets could deadlock).
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from . import bake_flow
from .chunks import chunk_count
from .operations import WAIT_APPLY, WAIT_RESTORE, WAIT_SHADOWS, WAIT_SNAPSHOTS, run_long
from .state import (
    AbortInput,
    ApplyWaveResult,
    ApprovalStatus,
    BatchChunkRef,
    BatchRef,
    CapacityResult,
    CheckContext,
    CheckInput,
    CheckResult,
    ChunkRef,
    ClaimResult,
    CreateShadowsResult,
    DecideResult,
    DriveResult,
    FinishInput,
    FinishResult,
    GateInput,
    GateOutcome,
    GateResult,
    HaltInput,
    OperatorEvent,
    ProductionDoneResult,
    RecoverInput,
    RolloutPhase,
    RolloutRef,
    RolloutStatus,
    ShadowTotals,
    StartInput,
    StartResult,
    VerifyResult,
    WatchInput,
    WatchOutcome,
    WatchShadowsInput,
    WatchShadowsResult,
    WaveChunkRef,
    WaveInput,
    WaveOutcome,
    WaveStatus,
)

ROLLOUT = "rollout_orchestrator"
WAVE = "wave_orchestrator"
WATCH = "watch_orchestrator"
RECOVER = "recover_orchestrator"

WATCH_ROUNDS_PER_GENERATION = 12
WATCH_REFERENCE_INTERVAL = 10.0
"""A generation of the watch holds ``WATCH_ROUNDS_PER_GENERATION`` looks at this interval, fewer at a shorter one:
each turn replays the generation's whole history, so the replay work per look grows with the rounds in a
generation; scaling them with the interval keeps the work per watched hour what it is at the reference."""
VERIFY_MINUTES = 3
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=30_000, max_number_of_attempts=3)
CLEANUP_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=60_000, max_number_of_attempts=5)
"""Teardown, capacity and lease release: retried longer (the Python SDK's RetryOptions carries no back-off
coefficient, so the extension waits the same minute between attempts); what still fails is recorded as a leak for
the janitor, never raised out of the rollout's error path."""

Orchestration = Generator[Any, Any, Any]


def _after(context: df.DurableOrchestrationContext, minutes: float) -> datetime:
    t: datetime = context.current_utc_datetime
    return t + timedelta(minutes=minutes)


def _first_line(exc: BaseException, limit: int = 500) -> str:
    return str(exc).split("\n")[0].strip()[:limit]


def _cleanup(context: df.DurableOrchestrationContext, activity: str, payload: dict[str, Any],
             leaks: list[str]) -> Orchestration:
    """Run a cleanup activity with back-off; if it still fails, note a leak and carry on (never raise)."""
    try:
        result = yield context.call_activity_with_retry(activity, CLEANUP_RETRY, payload)
    except Exception as exc:
        leaks.append(f"{activity}: {_first_line(exc, 300)}")
        return None
    return result


def _status(context: df.DurableOrchestrationContext, status: RolloutStatus, **changes: Any) -> None:
    for name, value in changes.items():
        setattr(status, name, value)
    context.set_custom_status(status.json_dict())


def _event(task: Any) -> OperatorEvent | None:
    """An operator's event as raised (a JSON object), or None when it carried none."""
    return OperatorEvent.model_validate(task.result) if isinstance(task.result, dict) else None


def _claim(context: df.DurableOrchestrationContext, status: RolloutStatus, base: RolloutRef,
           abort: Any) -> Orchestration:
    """Lease the target scale sets; while another rollout holds one, wait (queue) or give up (refuse)."""
    claim = ClaimResult.model_validate((yield context.call_activity("claim_targets", base.json_dict())))
    while not claim.claimed and claim.retry_minutes is not None:
        _status(context, status, phase=RolloutPhase.WAITING_FOR_TARGETS, reason=claim.reason)
        timer = context.create_timer(_after(context, claim.retry_minutes))
        winner = yield context.task_any([timer, abort])
        if winner == abort:
            timer.cancel()
            event = _event(abort)
            by = (event.by if event is not None else None) or "unknown"
            return ClaimResult(claimed=False, reason=f"aborted by {by} while waiting for targets")
        claim = ClaimResult.model_validate((yield context.call_activity("claim_targets", base.json_dict())))
    return claim


def _approval_gate(context: df.DurableOrchestrationContext, status: RolloutStatus, base: RolloutRef,
                   plan: StartResult, abort: Any) -> Orchestration:
    """Race an operator's approve or abort against the gate's timeout; the timer is cancelled if it lost."""
    opened: datetime = context.current_utc_datetime
    deadline = _after(context, plan.policy.approval_timeout_minutes)
    approval = ApprovalStatus(opened_at=opened, timeout_at=deadline, on_timeout=plan.policy.on_approval_timeout)
    _status(context, status, phase=RolloutPhase.AWAITING_APPROVAL, approval=approval)
    timeout = context.create_timer(deadline)
    approve = context.wait_for_external_event("approve")
    winner = yield context.task_any([approve, abort, timeout])
    event: OperatorEvent | None = None
    if winner == timeout:
        outcome = GateOutcome.TIMED_OUT
    else:
        timeout.cancel()
        outcome, event = ((GateOutcome.APPROVED, _event(approve)) if winner == approve
                          else (GateOutcome.ABORTED, _event(abort)))
    gate = GateResult.model_validate((yield context.call_activity("resolve_gate", GateInput(
        rollout_id=base.rollout_id, outcome=outcome, event=event, opened_at=opened).json_dict())))
    _status(context, status, approval=approval.model_copy(update={"outcome": outcome, "reason": gate.reason}))
    return gate


def _abort(context: df.DurableOrchestrationContext, base: RolloutRef, abort: Any, where: str,
           in_production: bool = False) -> Any:
    return context.call_activity("abort_rollout", AbortInput(rollout_id=base.rollout_id, event=_event(abort),
                                                             where=where, in_production=in_production).json_dict())


def _finish(context: df.DurableOrchestrationContext, base: RolloutRef, leaks: list[str], *, error: str | None = None,
            refused: str | None = None, request: dict[str, Any] | None = None,
            snapshots: bool = False) -> Orchestration:
    """Release the leases, then record the end (with any leak) and publish the outcome event. ``snapshots``: the
    rollout may have taken pre-change snapshots; ``discard_snapshots`` deletes them if it changed no VM."""
    if snapshots:
        yield from _cleanup(context, "discard_snapshots", base.json_dict(), leaks)
    yield from _cleanup(context, "release_leases", base.json_dict(), leaks)
    result = yield context.call_activity_with_retry("finish", CLEANUP_RETRY, FinishInput(
        rollout_id=base.rollout_id, error=error, refused=refused, leaks=list(leaks), request=request).json_dict())
    return FinishResult.model_validate(result)


def _withdraw(context: df.DurableOrchestrationContext, rollout_id: str, wave: int, reason: str) -> Orchestration:
    """The shadows condemned the change during the waves: withdraw it from every changed VM (check_production
    queues them) and restore them."""
    check = CheckResult.model_validate((yield context.call_activity("check_production", CheckInput(
        rollout_id=rollout_id, context=CheckContext.WAVE, wave=wave, withdraw=reason,
        check=f"{context.instance_id}:shadows:{wave}").json_dict())))
    if check.failing:
        yield context.call_sub_orchestrator(RECOVER, RecoverInput(rollout_id=rollout_id, batch=check.batch,
                                                                  chunks=check.chunks).json_dict(),
                                            f"{context.instance_id}:recover:shadows:{wave}")
    return check


def _snapshot_ahead(context: df.DurableOrchestrationContext, rollout_id: str, wave: int, size: int) -> Orchestration:
    """Snapshot a wave's VMs while the rollout waits anyway (the wave's own snapshot step then finds them taken;
    what fails here is left to it)."""
    try:
        yield from run_long(context, "snapshot_wave", [WaveChunkRef(rollout_id=rollout_id, wave=wave, chunk=c)
                                                       for c in range(chunk_count(size))], WAIT_SNAPSHOTS, RETRY)
    except Exception:  # the wave's snapshot step retries and excludes what it cannot protect, with a decision
        return None
    return None


def _watch(minutes: list[float], wave: int, default: float) -> float:
    return minutes[wave] if wave < len(minutes) else float(default)


def rollout_orchestrator(context: df.DurableOrchestrationContext) -> Orchestration:
    request = context.get_input()
    rid = str(request["rollout_id"]) if isinstance(request, dict) else ""
    status = RolloutStatus(rollout_id=rid, phase=RolloutPhase.INVENTORY)
    _status(context, status)
    leaks: list[str] = []
    try:
        plan = StartResult.model_validate((yield context.call_activity_with_retry(
            "start_rollout", RETRY, StartInput(request=request).json_dict())))
    except Exception as exc:  # an accepted request still ends with a record and an outcome event
        failed = yield from _finish(context, RolloutRef(rollout_id=rid), leaks, error=_first_line(exc),
                                    request=request if isinstance(request, dict) else None)
        _status(context, status, phase=RolloutPhase.FAILED, result=failed)
        return failed.json_dict()
    policy = plan.policy
    base = RolloutRef(rollout_id=plan.rollout_id)
    ref = base.json_dict()
    if plan.refused:  # e.g. a target lacks the guest prerequisites: nothing was created or changed
        refused = yield from _finish(context, base, leaks, refused=plan.refused)
        _status(context, status, phase=RolloutPhase.REFUSED, reason=plan.refused, result=refused)
        return refused.json_dict()
    abort = context.wait_for_external_event("abort")
    claim = yield from _claim(context, status, base, abort)
    if not claim.claimed:
        result = yield from _finish(context, base, leaks, refused=claim.reason)
        _status(context, status, phase=RolloutPhase.REFUSED, reason=claim.reason, result=result)
        return result.json_dict()
    torn_down = False
    in_production = False
    ahead = bake_flow.Ahead(rollout_id=plan.rollout_id)
    try:
        _status(context, status, phase=RolloutPhase.SHADOW_POOL, vms=plan.vms, strata=plan.strata)
        shadows = [CreateShadowsResult.model_validate(s) for s in (yield from run_long(
            context, "create_shadows", [ChunkRef(rollout_id=plan.rollout_id, chunk=c)
                                        for c in range(plan.shadow_chunks)], WAIT_SHADOWS, RETRY))]
        created = sum(s.created for s in shadows)
        _status(context, status, phase=RolloutPhase.BASELINE, shadows=created,
                shadow_results=ShadowTotals(created=created, failed=sum(s.failed for s in shadows),
                                            regular_price=sum(s.regular for s in shadows)))
        drive = DriveResult.model_validate((yield context.call_activity("drive_shadow_load", ref)))
        yield context.create_timer(_after(context, drive.baseline_minutes))
        _status(context, status, phase=RolloutPhase.APPLY_TO_SHADOWS)
        yield from run_long(context, "apply_to_shadows", [ChunkRef(rollout_id=plan.rollout_id, chunk=c)
                                                          for c in range(plan.shadow_chunks)], WAIT_APPLY)

        def bake_status(**changes: Any) -> None:
            _status(context, status, **changes)

        analysis = yield from bake_flow.bake(context, base, policy, abort, bake_status, ahead=ahead)
        if analysis is not None and analysis.ambiguous and not analysis.halt and policy.max_extra_shadows > 0:
            yield from bake_flow.add_shadows(context, base, policy, abort, bake_status, ahead)
        yield from ahead.wait(context)  # production starts with them taken, or they are deleted on a halt
        if abort.is_completed:
            yield from _cleanup(context, "teardown_shadows", ref, leaks)
            torn_down = True
            yield _abort(context, base, abort, "before production (during the bake)")
            result = yield from _finish(context, base, leaks, snapshots=bool(ahead.passes))
            _status(context, status, phase=RolloutPhase.ABORTED, result=result)
            return result.json_dict()
        decision = DecideResult.model_validate((yield context.call_activity("decide", ref)))
        _status(context, status, phase=RolloutPhase.DECIDED, decision=decision)
        if decision.halt:  # the shadows are kept through the waves, when there are waves
            yield from _cleanup(context, "teardown_shadows", ref, leaks)
            torn_down = True
            result = yield from _finish(context, base, leaks, snapshots=bool(ahead.passes))
            _status(context, status, phase=RolloutPhase.HALTED_BEFORE_PRODUCTION, result=result)
            return result.json_dict()
        if policy.approval_required:
            gate = yield from _approval_gate(context, status, base, plan, abort)
            if not gate.proceed:
                yield from _cleanup(context, "teardown_shadows", ref, leaks)
                torn_down = True
                result = yield from _finish(context, base, leaks, snapshots=bool(ahead.passes))
                _status(context, status, phase=RolloutPhase.HALTED_BEFORE_PRODUCTION, result=result)
                return result.json_dict()
        elif abort.is_completed:
            yield from _cleanup(context, "teardown_shadows", ref, leaks)
            torn_down = True
            yield _abort(context, base, abort, "before production (after the decision)")
            result = yield from _finish(context, base, leaks, snapshots=bool(ahead.passes))
            _status(context, status, phase=RolloutPhase.ABORTED, result=result)
            return result.json_dict()
        # the last wave waits until the shadows have baked the whole bake_minutes (they lead the bulk of production)
        lead_end = _after(context, max(0.0, policy.bake_minutes - decision.shadow_minute))
        in_production = True  # from here on VMs may be changed (prepare snapshots, the waves apply)
        prepared = CapacityResult.model_validate((yield from run_long(context, "prepare", [base], WAIT_SNAPSHOTS,
                                                                       RETRY))[0])
        _status(context, status, capacity=CapacityResult(extra=prepared.extra), rollbacks=0)
        waves = len(decision.waves)
        interval = float(policy.watch_interval_minutes)  # after every wave: from their leads (production_done)
        for w, size in enumerate(decision.waves):
            if w == waves - 1 and w > 0 and not torn_down:
                if context.current_utc_datetime < lead_end and not abort.is_completed:
                    yield from _snapshot_ahead(context, plan.rollout_id, w, size)
                seen = yield from bake_flow.hold_for_lead(context, base, policy, lead_end, w - 1, abort)
                if seen is not None:
                    yield from _withdraw(context, plan.rollout_id, w - 1, seen.reason)
                    _status(context, status, phase=RolloutPhase.HALTED_IN_PRODUCTION)
                    break
            if abort.is_completed:
                yield _abort(context, base, abort, f"before wave {w + 1} of {waves}", in_production=True)
                _status(context, status, phase=RolloutPhase.HALTED_IN_PRODUCTION, aborted=True)
                break
            _status(context, status, phase=RolloutPhase.PRODUCTION, wave=w + 1, waves=waves)
            wave = context.call_sub_orchestrator(
                WAVE, WaveInput(rollout_id=plan.rollout_id, wave=w, chunks=chunk_count(size),
                                watch_minutes=_watch(decision.watch_max, w, policy.wave_watch_minutes),
                                min_watch_minutes=_watch(decision.watch_min, w, policy.wave_watch_minutes),
                                shadows=not torn_down).json_dict(),
                f"{context.instance_id}:wave:{w}")
            yield context.task_any([wave, abort])
            # an abort lets the running wave finish: its VMs are checked and recovered
            outcome = WaveOutcome.model_validate((yield wave))
            _status(context, status, rollbacks=(status.rollbacks or 0) + outcome.failing, waves_done=w + 1)
            if outcome.halt:
                _status(context, status, phase=RolloutPhase.HALTED_IN_PRODUCTION)
                break
            if abort.is_completed:
                yield _abort(context, base, abort, f"during wave {w + 1} of {waves} (that wave finished; "
                             "no further wave)", in_production=True)
                _status(context, status, phase=RolloutPhase.HALTED_IN_PRODUCTION, aborted=True)
                break
        else:  # every wave ran: say so before the watch (a pipeline cannot wait out the watch)
            done = ProductionDoneResult.model_validate((yield context.call_activity("production_done", ref)))
            if done.watch_interval is not None:
                interval = done.watch_interval
        # the shadows led production through the waves; the 24-hour watch is production's own
        yield from _cleanup(context, "teardown_shadows", ref, leaks)
        torn_down = True
        if policy.production_watch_minutes > 0:
            until = _after(context, policy.production_watch_minutes)
            _status(context, status, phase=RolloutPhase.WATCH, watch_started_at=context.current_utc_datetime,
                    watch_until=until)
            yield context.call_sub_orchestrator(
                WATCH, WatchInput(rollout_id=plan.rollout_id, until=until, interval=interval).json_dict(),
                f"{context.instance_id}:watch")
        released = yield from _cleanup(context, "release_capacity", ref, leaks)
        result = yield from _finish(context, base, leaks, snapshots=True)
        extra = CapacityResult.model_validate(released).extra if released is not None else {}
        _status(context, status, phase=RolloutPhase.DONE, result=result, capacity=CapacityResult(extra=extra))
        return result.json_dict()
    except Exception as exc:
        # Leave nothing behind: shadows deleted, borrowed capacity returned, the record says what happened.
        # VMs already changed are not abandoned: production is still watched, and failing VMs restored.
        error = _first_line(exc)
        yield from ahead.wait(context)
        if not torn_down:
            yield from _cleanup(context, "teardown_shadows", ref, leaks)
        if in_production and policy.production_watch_minutes > 0:
            until = _after(context, policy.production_watch_minutes)
            _status(context, status, phase=RolloutPhase.WATCH, error=error,
                    watch_started_at=context.current_utc_datetime, watch_until=until)
            try:
                yield context.call_sub_orchestrator(
                    WATCH, WatchInput(rollout_id=plan.rollout_id, until=until,
                                      interval=policy.watch_interval_minutes).json_dict(),
                    f"{context.instance_id}:watch-after-error")
            except Exception as watch_exc:
                error += f"; the watch failed too: {_first_line(watch_exc, 200)}"
        yield from _cleanup(context, "release_capacity", ref, leaks)
        result = yield from _finish(context, base, leaks, error=error, snapshots=bool(ahead.passes) or in_production)
        _status(context, status, phase=RolloutPhase.FAILED, result=result)
        return result.json_dict()


def wave_orchestrator(context: df.DurableOrchestrationContext) -> Orchestration:
    inp = WaveInput.model_validate(context.get_input())
    try:
        yield from run_long(context, "snapshot_wave", [WaveChunkRef(rollout_id=inp.rollout_id, wave=inp.wave, chunk=c)
                                                       for c in range(inp.chunks)], WAIT_SNAPSHOTS, RETRY)
    except Exception as exc:  # VMs left without a snapshot are excluded by apply_wave, with a decision
        context.set_custom_status(WaveStatus(wave=inp.wave, snapshot_error=str(exc).split("\n")[0][:300]).json_dict())
    # a batch ARM refused as a whole changed nothing and is safe to retry: apply_wave skips applied VMs
    applied = [ApplyWaveResult.model_validate(a) for a in (yield from run_long(
        context, "apply_wave", [WaveChunkRef(rollout_id=inp.rollout_id, wave=inp.wave, chunk=c)
                                for c in range(inp.chunks)], WAIT_APPLY, RETRY))]
    if not any(a.applied for a in applied) and any(a.excluded for a in applied):
        yield context.call_activity("halt", HaltInput(rollout_id=inp.rollout_id, wave=inp.wave, reason=(
            f"no VM of wave {inp.wave + 1} could be snapshotted")).json_dict())
        return WaveOutcome(halt=True, failing=0).json_dict()
    shadow_halt = False
    seen = WatchShadowsResult(halt=False)
    if not any(a.failed for a in applied):  # a failed apply is judged at once; otherwise watch first
        shortest = inp.watch_minutes if inp.min_watch_minutes is None else min(inp.min_watch_minutes,
                                                                                 inp.watch_minutes)
        yield context.create_timer(_after(context, shortest))
        doubt = True
        if inp.shadows:  # the shadows lead production: harm on them stops the waves; doubt lengthens the watch
            seen = WatchShadowsResult.model_validate((yield context.call_activity("watch_shadows", WatchShadowsInput(
                rollout_id=inp.rollout_id, wave=inp.wave).json_dict())))
            shadow_halt, doubt = seen.halt, seen.doubt
        if doubt and not shadow_halt and inp.watch_minutes > shortest:
            yield context.create_timer(_after(context, inp.watch_minutes - shortest))
    check = CheckResult.model_validate((yield context.call_activity("check_production", CheckInput(
        rollout_id=inp.rollout_id, context=CheckContext.WAVE, wave=inp.wave,
        withdraw=seen.reason if shadow_halt else None, check=f"{context.instance_id}:check").json_dict())))
    if check.failing:
        yield context.call_sub_orchestrator(RECOVER, RecoverInput(rollout_id=inp.rollout_id, batch=check.batch,
                                                                  chunks=check.chunks).json_dict(),
                                            f"{context.instance_id}:recover")
    # the wave's VMs passed (or were restored): borrow only what the rollbacks still expected need
    yield from _cleanup(context, "settle_capacity", RolloutRef(rollout_id=inp.rollout_id).json_dict(), [])
    return WaveOutcome(halt=check.halt or shadow_halt, failing=check.failing).json_dict()


def watch_orchestrator(context: df.DurableOrchestrationContext) -> Orchestration:
    """Watch production after the last wave; restarts itself as new to keep its history short.

    Each look is due ``interval`` after the previous one began, not after the recovery it started: a few VMs
    restored (too few for the surprise test) must not delay the look that finds the rest of a late onset."""
    inp = WatchInput.model_validate(context.get_input())
    due = min(_after(context, inp.interval), inp.until)
    rounds = max(1, min(WATCH_ROUNDS_PER_GENERATION,
                        round(WATCH_ROUNDS_PER_GENERATION * inp.interval / WATCH_REFERENCE_INTERVAL)))
    for k in range(rounds):
        now: datetime = context.current_utc_datetime
        if now >= inp.until:
            return WatchOutcome(watched_until=inp.until).json_dict()
        if now < due:  # a recovery that outlasted the interval does not push the next look back
            yield context.create_timer(due)
        due = min(_after(context, inp.interval), inp.until)
        check = CheckResult.model_validate((yield context.call_activity("check_production", CheckInput(
            rollout_id=inp.rollout_id, context=CheckContext.WATCH,
            check=f"{context.instance_id}:{inp.generation}:{k}").json_dict())))
        if check.failing:
            yield context.call_sub_orchestrator(
                RECOVER, RecoverInput(rollout_id=inp.rollout_id, batch=check.batch, chunks=check.chunks).json_dict(),
                f"{context.instance_id}:recover:{inp.generation}:{k}")
    context.continue_as_new(inp.model_copy(update={"generation": inp.generation + 1}).json_dict())
    return None


def recover_orchestrator(context: df.DurableOrchestrationContext) -> Orchestration:
    """Capacity first, then restore from snapshots, post-rollback script, health check, capacity back."""
    inp = RecoverInput.model_validate(context.get_input())
    batch = BatchRef(rollout_id=inp.rollout_id, batch=inp.batch).json_dict()
    yield context.call_activity_with_retry("reserve_capacity", RETRY, batch)
    yield from run_long(context, "restore_vms", [BatchChunkRef(rollout_id=inp.rollout_id, batch=inp.batch, chunk=c)
                                                 for c in range(inp.chunks)], WAIT_RESTORE, RETRY)
    yield context.create_timer(_after(context, VERIFY_MINUTES))
    verified = VerifyResult.model_validate((yield context.call_activity("verify_recovered", batch)))
    # a failure here is not the recovery's: the rollout's own release at its end gives the instances back
    yield from _cleanup(context, "release_capacity", RolloutRef(rollout_id=inp.rollout_id).json_dict(), [])
    return verified.json_dict()
