"""Production: snapshots, the waves, the checks that queue rollbacks, the restores and their verification.

Each chunk of a wave or of a rollback batch writes only the rows of its own VMs, each from its fresh version.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from ... import observability
from ...domain.decisions import (
    Decision,
    adaptive_error_threshold,
    assess_changed_vms,
    assess_probe_failures,
    withdraw_change,
)
from ...domain.errors import ShadowRolloutError, TransientError
from ...domain.health import Baseline, failing_vms
from ...domain.kinds import DecisionKind
from ...domain.model import ApplyResult, ApplyStatus, ChangeSpec, Config, SnapshotInfo
from ...services import Services
from ..chunks import chunk, chunk_count
from ..repository import Step
from ..state import (
    ApplyWaveResult,
    BatchChunkRef,
    BatchRef,
    CapacityResult,
    CheckContext,
    CheckInput,
    CheckMemo,
    CheckResult,
    HaltInput,
    HaltResult,
    PastDecision,
    ProductionDoneResult,
    RestoreChunkResult,
    Rollback,
    RollbackState,
    RolloutPhase,
    RolloutRecord,
    RolloutRef,
    SnapshotResult,
    VerifyResult,
    VmAction,
    VmItem,
    WaveChunkRef,
)
from .capacity import cover_at_risk, not_serving
from .common import MIN_PEERS, PEER_SAMPLE, PRE_CHANGE_MINUTES, Rollout, nanmean_rows, publish_outcome, short


def snapshot_vms(r: Rollout, vm_ids: list[str], items: dict[str, VmItem]) -> int:
    todo = [v for v in vm_ids if items[v].snapshot is None]
    if not todo:
        return 0
    snaps = {s.vm_id: s for s in r.svc.snapshots.snapshot(todo, tag=f"pre-{r.id}")}
    r.repo.update_vms(snaps, lambda k, cur: None if cur.snapshot is not None else cur.model_copy(
        update={"snapshot": snaps[k], "actions": [*cur.actions, VmAction.SNAPSHOT]}))
    missing = sorted(set(todo) - set(snaps))
    if missing:  # raise so that a Durable retry takes the rest; what succeeded is kept
        raise TransientError(f"no snapshot for {len(missing)} of {len(todo)} VMs, e.g. {missing[0]}",
                             operation="snapshot", resource=missing[0])
    return len(snaps)


def prepare(svc: Services, payload: RolloutRef) -> CapacityResult:
    """Snapshot the VMs at risk, queue their rollbacks, and pre-allocate capacity for expected failures."""
    r = Rollout(svc, payload.rollout_id, Step.PREPARE)
    items = r.vms()
    at_risk = list(r.record.at_risk)
    taken = snapshot_vms(r, at_risk, items)
    if at_risk:
        r.repo.put_standby(at_risk)
    decisions = [Decision(DecisionKind.PREPARE, f"{taken} at-risk VMs snapshotted and queued for rollback "
                          f"(predicted >= {r.policy.snapshot_probability:g})")] if at_risk else []
    extra = dict(r.record.extra)
    cover_at_risk(r, items, at_risk, extra, decisions)
    r.update(extra=extra)
    r.decide(decisions)
    return CapacityResult(snapshots=taken, extra=extra)


def snapshot_wave(svc: Services, payload: WaveChunkRef) -> SnapshotResult:
    r = Rollout(svc, payload.rollout_id, Step.SNAPSHOT_WAVE, f"w{payload.wave:02d}c{payload.chunk:02d}")
    ids = chunk(r.repo.wave(payload.wave), payload.chunk)
    return SnapshotResult(snapshots=snapshot_vms(r, ids, r.vms()))


def apply_wave(svc: Services, payload: WaveChunkRef) -> ApplyWaveResult:
    """Apply the change to one chunk of a wave; remember each VM's pre-change error rate first."""
    r = Rollout(svc, payload.rollout_id, Step.APPLY_WAVE, f"w{payload.wave:02d}c{payload.chunk:02d}")
    items = r.vms()
    ids = chunk(r.repo.wave(payload.wave), payload.chunk)
    unprotected = [v for v in ids if items[v].apply is None and items[v].snapshot is None and not items[v].excluded]
    if unprotected:
        r.repo.update_vms(unprotected, lambda _, cur: cur.model_copy(update={"excluded": "no pre-change snapshot"}))
        r.decide([Decision(DecisionKind.EXCLUDE_VM, f"{short(v)}: no pre-change snapshot could be taken, so it could "
                           "not be restored; left on the old configuration", v) for v in unprotected])
    todo = [v for v in ids if items[v].apply is None and items[v].snapshot is not None]
    if not todo:
        return ApplyWaveResult(applied=0, failed=0, excluded=len(unprotected))
    now = r.now
    frame = svc.telemetry.signals(todo, now - timedelta(minutes=PRE_CHANGE_MINUTES), now)
    base_err = nanmean_rows(frame.signals["error_count"])
    base_cpu = nanmean_rows(frame.signals["cpu_pct"])
    before = {v: (None if np.isnan(e) else round(float(e), 3), None if np.isnan(c) else round(float(c), 2))
              for v, e, c in zip(todo, base_err, base_cpu, strict=True)}
    r.repo.update_vms(todo, lambda k, cur: cur.model_copy(update={
        "baseline_errors": before[k][0], "baseline_cpu": before[k][1], "config": Config.NEW, "applying": True}))
    change = ChangeSpec.from_dict(r.record.request.change.model_dump())
    try:
        results = svc.fleet.apply_change(todo, change, timeout_minutes=r.policy.apply_timeout_minutes)
    except ShadowRolloutError as exc:
        # the batch was refused as a whole (per-VM failures come back as results): nothing was applied
        refused = str(exc)
        r.repo.update_vms(todo, lambda _, cur: cur.model_copy(update={
            "config": Config.OLD, "applying": False, "apply_error": refused}))
        raise
    done = r.now
    applied: dict[str, ApplyResult] = {a.vm_id: a for a in results}
    r.repo.update_vms(applied, lambda k, cur: cur.model_copy(update={
        "apply": applied[k], "applied_at": done, "applying": False, "actions": [*cur.actions, VmAction.APPLY]}))
    failed = sum(1 for a in results if a.status is not ApplyStatus.OK)
    return ApplyWaveResult(applied=len(results), failed=failed, excluded=len(unprotected))


def _peer_error_rate(r: Rollout, items: dict[str, VmItem]) -> float | None:
    """Median error-log rate now of VMs still on the old configuration (skipped or not yet reached)."""
    untouched = sorted(k for k, v in items.items() if v.apply is None)[:PEER_SAMPLE]
    if len(untouched) < MIN_PEERS:
        return None
    now = r.now
    frame = r.svc.telemetry.signals(untouched, now - timedelta(minutes=r.policy.error_window_minutes), now)
    rates = nanmean_rows(frame.signals["error_count"])
    rates = rates[~np.isnan(rates)]
    return float(np.median(rates)) if rates.size >= MIN_PEERS else None


def check_production(svc: Services, payload: CheckInput) -> CheckResult:
    """Find failing changed VMs, queue them for rollback, and (between waves) apply the error threshold.

    Safe to run twice: what it found is written ahead under the caller's key (``check``) before anything is
    queued, so a run after a death part-way queues the same VMs in the same batch and answers the same."""
    scope = payload.context.value + (f"-w{payload.wave:02d}" if payload.wave is not None else "")
    r = Rollout(svc, payload.rollout_id, Step.CHECK_PRODUCTION, scope)
    key = payload.check
    found = r.repo.memo(key) if key else None
    if found is not None and found.done:
        return found.answer
    if found is None:
        found = _assess_production(r, payload.context is CheckContext.WAVE, payload.withdraw)
        if found.failing:
            def next_batch(rec: RolloutRecord) -> None:  # counted on the fresh record: no two checks share a number
                rec.rollback_batches += 1

            r.record = r.repo.update_record(next_batch)
            found.answer.batch = f"b{r.record.rollback_batches}"
        if key:
            r.repo.put_memo(key, found)
    failing = found.failing
    batch = found.answer.batch
    decisions: list[Decision] = []
    if found.withdraw:
        r.update(withdrawn=True, halted=True)
    if failing:
        r.repo.put_batch(batch, sorted(failing))
        r.repo.update_vms(failing, lambda k, cur: None if cur.rollback is not None else cur.model_copy(update={
            "rollback": Rollback(batch=batch, state=RollbackState.QUEUED, reason=failing[k])}))
        decisions += [Decision(DecisionKind.ROLLBACK_VM, f"{short(k)}: {why}", k) for k, why in sorted(failing.items())]
        for k, why in sorted(failing.items()):
            observability.rollback_queued(r.id, k, why)
    if found.verdict is not None:
        verdict = Decision(found.verdict.kind, found.verdict.reason, found.verdict.subject, dict(found.verdict.data))
        decisions.append(verdict)
        if found.answer.halt:
            r.update(halted=True, phase=RolloutPhase.HALTED_IN_PRODUCTION)
            publish_outcome(r, "halted", verdict.reason, where="production", failing=found.failing_total,
                            changed=found.answer.changed)
    r.decide(decisions)
    if key:
        r.repo.put_memo(key, found.model_copy(update={"done": True}))
    return found.answer


def _assess_production(r: Rollout, between_waves: bool, shadows_condemn: str | None = None) -> CheckMemo:
    """What a production check finds, before it changes anything: failing VMs and the verdict.

    ``shadows_condemn``: the shadows, which lead production, showed the change harmful (that decision's reason):
    it is withdrawn from every changed VM at once, as a surprise in the production watch would withdraw it."""
    items = r.vms()
    changed = [k for k, v in items.items() if v.apply is not None]
    live = [k for k in changed if items[k].rollback is None]
    now = r.now
    window = timedelta(minutes=max(r.policy.health_window_minutes, r.policy.flap_window_minutes,
                                   r.policy.error_window_minutes))
    frame = r.svc.telemetry.signals(live, now - window, now) if live else None
    applies = [a for k in live if (a := items[k].apply) is not None and a.status is not ApplyStatus.OK]
    baselines = {k: Baseline(items[k].baseline_errors, items[k].baseline_cpu) for k in live}
    failing = failing_vms(frame, baselines, applies, r.policy, _peer_error_rate(r, items)) if frame is not None else {}
    failing_total = sum(1 for k in changed if items[k].rollback is not None) + len(failing)
    threshold = adaptive_error_threshold(r.record.predicted_rate, r.policy)
    d = assess_changed_vms(len(changed), failing_total, threshold)
    if d.kind is not DecisionKind.HALT_IN_PRODUCTION and frame is not None:
        health = frame.signals["health_ok"]
        d = assess_probe_failures(int(np.sum(health == 0.0)), int(np.sum(~np.isnan(health))), r.policy) or d
    halt, withdraw, verdict = False, False, None
    if shadows_condemn is not None and not r.record.withdrawn:
        w = withdraw_change(live, failing, Decision(DecisionKind.HALT_IN_PRODUCTION, shadows_condemn))
        failing.update(w.data["vms"])
        withdraw, halt = True, True
        verdict = PastDecision(kind=w.kind, reason=w.reason, subject=w.subject, data=dict(w.data))
    elif between_waves:
        halt = d.kind is DecisionKind.HALT_IN_PRODUCTION
        if halt or failing:
            verdict = PastDecision(kind=d.kind, reason=d.reason, subject=d.subject, data=dict(d.data))
    elif d.kind is DecisionKind.HALT_IN_PRODUCTION and not r.record.withdrawn:
        w = withdraw_change(live, failing, d)  # the watch: failures this surprising withdraw it all
        failing.update(w.data["vms"])
        withdraw = True
        verdict = PastDecision(kind=w.kind, reason=w.reason, subject=w.subject, data=dict(w.data))
    return CheckMemo(failing=dict(failing), failing_total=failing_total, verdict=verdict, withdraw=withdraw,
                     answer=CheckResult(failing=len(failing), chunks=chunk_count(len(failing)), halt=halt,
                                        changed=len(changed)))


def production_done(svc: Services, payload: RolloutRef) -> ProductionDoneResult:
    """Announce that every wave is done, before the production watch: what a pipeline waits for."""
    r = Rollout(svc, payload.rollout_id, Step.PRODUCTION_DONE)
    items = r.vms().values()
    changed = sum(1 for v in items if v.apply is not None)
    rolled = sum(1 for v in items if v.rollback is not None)
    watch = r.policy.production_watch_minutes
    publish_outcome(r, "production_done", f"every wave done: {changed} VMs changed, {rolled} rolled back; "
                    f"production is watched for {watch:g} more minutes", changed=changed, rolled_back=rolled,
                    watch_minutes=watch)
    return ProductionDoneResult(changed=changed, rolled_back=rolled)


def halt(svc: Services, payload: HaltInput) -> HaltResult:
    """Stop before the next wave for a reason found outside the error threshold."""
    r = Rollout(svc, payload.rollout_id, Step.HALT, f"w{payload.wave:02d}" if payload.wave is not None else "")
    r.update(halted=True, phase=RolloutPhase.HALTED_IN_PRODUCTION)
    r.decide([Decision(DecisionKind.HALT_IN_PRODUCTION, payload.reason)])
    publish_outcome(r, "halted", payload.reason, where="production")
    return HaltResult(halt=True, reason=payload.reason)


def restore_vms(svc: Services, payload: BatchChunkRef) -> RestoreChunkResult:
    """Restore one chunk of a rollback batch from pre-change snapshots, then run the post-rollback script."""
    r = Rollout(svc, payload.rollout_id, Step.RESTORE_VMS, f"{payload.batch}c{payload.chunk:02d}")
    items = r.vms()
    ids = chunk(r.repo.batch(payload.batch), payload.chunk)
    todo = [k for k in ids if (rb := items[k].rollback) is not None and rb.state is RollbackState.QUEUED]
    if not todo:
        return RestoreChunkResult(restored=0)
    snaps: list[SnapshotInfo] = []
    for k in todo:
        snap = items[k].snapshot
        if snap is None:
            raise RuntimeError(f"{k} was changed without a pre-change snapshot")
        snaps.append(snap)
    results = {x.vm_id: x for x in svc.fleet.restore_from_snapshots(snaps)}
    for x in results.values():
        observability.rollback_finished(r.id, x.vm_id, ok=x.ok, message=x.message)
    ok = [k for k, x in results.items() if x.ok]
    scripts = svc.fleet.run_script(ok, r.policy.post_rollback_script) if ok else {}

    def restored(k: str, cur: VmItem) -> VmItem:
        x = results[k]
        rb = cur.rollback or Rollback(batch=payload.batch, state=RollbackState.QUEUED, reason="")
        return cur.model_copy(update={
            "rollback": rb.model_copy(update={"state": RollbackState.RESTORED if x.ok else RollbackState.RESTORE_FAILED,
                                              "attempts": x.attempts, "message": x.message,
                                              "script_ok": scripts.get(k)}),
            "config": Config.OLD if x.ok else cur.config,
            "actions": [*cur.actions, VmAction.RESTORE, VmAction.POST_ROLLBACK_SCRIPT]})

    r.repo.update_vms(results, restored)
    return RestoreChunkResult(restored=len(ok), failed=len(results) - len(ok))


def verify_recovered(svc: Services, payload: BatchRef) -> VerifyResult:
    r = Rollout(svc, payload.rollout_id, Step.VERIFY_RECOVERED, payload.batch)
    items = r.vms()
    ids = [k for k in r.repo.batch(payload.batch)
           if (rb := items[k].rollback) is not None and rb.state is RollbackState.RESTORED]
    unhealthy = not_serving(r, ids) if ids else set()

    def verified(k: str, cur: VmItem) -> VmItem | None:
        if cur.rollback is None:
            return None
        state = RollbackState.UNHEALTHY if k in unhealthy else RollbackState.VERIFIED
        return cur.model_copy(update={"rollback": cur.rollback.model_copy(update={"state": state})})

    r.repo.update_vms(ids, verified)
    decisions = [Decision(DecisionKind.RECOVERED, f"{len(ids) - len(unhealthy)}/{len(ids)} restored VMs of batch "
                          f"{payload.batch} healthy after the post-rollback script")]
    decisions += [Decision(DecisionKind.RESTORE_UNHEALTHY, f"{short(k)} still failing its health probe after "
                           "restore; left for an operator", k) for k in sorted(unhealthy)]
    r.decide(decisions)
    publish_outcome(r, "rollback", decisions[0].reason, seq=payload.batch, batch=payload.batch,
                    restored=len(ids), verified=len(ids) - len(unhealthy), unhealthy=len(unhealthy))
    return VerifyResult(verified=len(ids) - len(unhealthy), unhealthy=len(unhealthy))
