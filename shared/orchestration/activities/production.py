"""Production: snapshots, the waves, the checks that queue rollbacks, the restores and their verification.

Each chunk of a wave or of a rollback batch writes only the rows of its own VMs, each from its fresh version.
"""

from __future__ import annotations

import heapq
import math
from datetime import timedelta

import numpy as np

from ... import observability
from ...domain.ahead import discard_snapshots as discard
from ...domain.decisions import (
    Decision,
    adaptive_error_threshold,
    assess_changed_vms,
    assess_probe_failures,
    withdraw_change,
)
from ...domain.errors import AzureOperationError, ShadowRolloutError, TransientError
from ...domain.health import Baselines, failing_vms
from ...domain.kinds import DecisionKind
from ...domain.model import ApplyResult, ApplyStatus, ChangeSpec, Config, RestoreResult, SnapshotInfo
from ...domain.operations import OperationState, OperationStatus
from ...domain.resource_id import resource_group_of
from ...domain.waves import watch_cadence
from ...services import Services
from ..chunks import chunk, chunk_count
from ..operations import AheadOp, BatchChunkOp, Began, RolloutOp, WaveChunkOp
from ..repository import Step
from ..state import (
    AheadRef,
    ApplyWaveResult,
    BatchChunkRef,
    BatchRef,
    CapacityResult,
    CheckContext,
    CheckInput,
    CheckMemo,
    CheckResult,
    DiscardResult,
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
from .longops import BEGIN, apply_outcome, operation_key


def begin_snapshot_vms(r: Rollout, vm_ids: list[str], items: dict[str, VmItem], scope: str) -> Began:
    todo = [v for v in vm_ids if items[v].snapshot is None]
    if not todo:
        return Began()
    return Began(operation=r.svc.operations.begin_snapshots(operation_key(r.id, "snapshot", scope), todo,
                                                             tag=f"pre-{r.id}"))


def snapshot_vms(r: Rollout, vm_ids: list[str], items: dict[str, VmItem], op: OperationStatus | None) -> int:
    """Record the snapshots the operation made; raise if some VM has none (what succeeded is kept)."""
    todo = [v for v in vm_ids if items[v].snapshot is None]
    if not todo or op is None:
        return 0
    made = r.svc.operations.snapshot_results(op.handle, todo) if op.state is OperationState.SUCCEEDED else []
    snaps = {s.vm_id: s for s in made}
    r.repo.update_vms(snaps, lambda k, cur: None if cur.snapshot is not None else cur.model_copy(
        update={"snapshot": snaps[k], "actions": [*cur.actions, VmAction.SNAPSHOT]}))
    missing = sorted(set(todo) - set(snaps))
    if missing:  # the wave goes on without them: apply_wave excludes a VM without a snapshot, with a decision
        why = f" ({op.state}: {op.message})" if op.state is not OperationState.SUCCEEDED else ""
        raise TransientError(f"no snapshot for {len(missing)} of {len(todo)} VMs, e.g. {missing[0]}{why}",
                             operation="snapshot", resource=missing[0])
    return len(snaps)


def begin_prepare(svc: Services, payload: RolloutRef) -> Began:
    """Begin the snapshots of the VMs at risk."""
    r = Rollout(svc, payload.rollout_id, Step.PREPARE, BEGIN)
    return begin_snapshot_vms(r, list(r.record.at_risk), r.vms(), "at-risk")


def prepare(svc: Services, payload: RolloutOp) -> CapacityResult:
    """Record the snapshots of the VMs at risk, queue their rollbacks, and pre-allocate capacity for expected
    failures."""
    r = Rollout(svc, payload.rollout_id, Step.PREPARE)
    items = r.vms()
    at_risk = list(r.record.at_risk)
    taken = snapshot_vms(r, at_risk, items, payload.operation)
    if at_risk:
        r.repo.put_standby(at_risk)
    ahead = sum(1 for v in at_risk if items[v].snapshot is not None)  # taken during the bake
    decisions = [Decision(DecisionKind.PREPARE, f"{taken + ahead} at-risk VMs snapshotted ({ahead} during the "
                          f"bake) and queued for rollback (predicted >= {r.policy.snapshot_probability:g})",
                          data={"snapshots": taken + ahead, "during_bake": ahead})] if at_risk else []
    extra = dict(r.record.extra)
    cover_at_risk(r, items, at_risk, extra, decisions)
    r.update(extra=extra)
    r.decide(decisions)
    return CapacityResult(snapshots=taken, extra=extra)


def _ahead_todo(r: Rollout, items: dict[str, VmItem]) -> list[str]:
    return sorted(k for k, v in items.items() if v.ahead and v.snapshot is None and v.apply is None
                  and not v.applying)


def begin_snapshot_ahead(svc: Services, payload: AheadRef) -> Began:
    """Begin the snapshots of the VMs a bake look chose (:mod:`shared.domain.ahead`) that have none yet."""
    scope = f"ahead{payload.round:02d}"
    r = Rollout(svc, payload.rollout_id, Step.SNAPSHOT_AHEAD, scope + BEGIN)
    items = r.vms()
    return begin_snapshot_vms(r, _ahead_todo(r, items), items, scope)


def snapshot_ahead(svc: Services, payload: AheadOp) -> SnapshotResult:
    """Record the snapshots a pass made. A VM left without one is not an error here: ``prepare`` or its wave's
    snapshot step takes it (and excludes it, with a decision, if that fails too); a VM chosen after the pass
    began is taken by the next pass."""
    r = Rollout(svc, payload.rollout_id, Step.SNAPSHOT_AHEAD, f"ahead{payload.round:02d}")
    items = r.vms()
    op = payload.operation
    if op is None or op.state is not OperationState.SUCCEEDED:
        return SnapshotResult(snapshots=0)
    made = {s.vm_id: s for s in svc.operations.snapshot_results(op.handle, _ahead_todo(r, items))}
    r.repo.update_vms(made, lambda k, cur: None if cur.snapshot is not None else cur.model_copy(
        update={"snapshot": made[k], "actions": [*cur.actions, VmAction.SNAPSHOT]}))
    return SnapshotResult(snapshots=len(made))


def discard_snapshots(svc: Services, payload: RolloutRef) -> DiscardResult:
    """At the end of a rollout that changed no production VM, delete the snapshots taken during the bake
    (:func:`domain.ahead.discard_snapshots`). Safe to run twice: deleting by the rollout's tag deletes nothing the
    second time; the moment is written ahead and the decision recorded at it (a re-run rewrites the same row), and
    the VMs' records of those snapshots are cleared last, so a run cut short anywhere deletes again and records
    once."""
    r = Rollout(svc, payload.rollout_id, Step.DISCARD_SNAPSHOTS)
    items = r.vms()
    taken = [k for k, v in items.items() if v.snapshot is not None]
    changed = sum(1 for v in items.values() if v.apply is not None or v.applying)
    verdict = discard(len(taken), changed)
    if not verdict.delete:
        return DiscardResult(deleted=0)
    at = r.record.discarded_at
    if at is None:
        at = r.now
        r.update(discarded_at=at)
    groups = sorted({resource_group_of(s.snapshot_id) for k in taken if (s := items[k].snapshot) is not None})
    deleted = svc.snapshots.delete_tagged(f"pre-{r.id}", groups)
    r.decide([verdict.decision] if verdict.decision is not None else [], at=at)
    r.repo.update_vms(taken, lambda _, cur: cur.model_copy(update={"snapshot": None}))
    return DiscardResult(deleted=deleted)


def begin_snapshot_wave(svc: Services, payload: WaveChunkRef) -> Began:
    scope = f"w{payload.wave:02d}c{payload.chunk:02d}"
    r = Rollout(svc, payload.rollout_id, Step.SNAPSHOT_WAVE, scope + BEGIN)
    return begin_snapshot_vms(r, chunk(r.repo.wave(payload.wave), payload.chunk), r.vms(), scope)


def snapshot_wave(svc: Services, payload: WaveChunkOp) -> SnapshotResult:
    r = Rollout(svc, payload.rollout_id, Step.SNAPSHOT_WAVE, f"w{payload.wave:02d}c{payload.chunk:02d}")
    ids = chunk(r.repo.wave(payload.wave), payload.chunk)
    return SnapshotResult(snapshots=snapshot_vms(r, ids, r.vms(), payload.operation))


def begin_apply_wave(svc: Services, payload: WaveChunkRef) -> Began:
    """Begin applying the change to one chunk of a wave; remember each VM's pre-change error rate first."""
    r = Rollout(svc, payload.rollout_id, Step.APPLY_WAVE, f"w{payload.wave:02d}c{payload.chunk:02d}{BEGIN}")
    items = r.vms()
    ids = chunk(r.repo.wave(payload.wave), payload.chunk)
    unprotected = [v for v in ids if items[v].apply is None and items[v].snapshot is None and not items[v].excluded]
    if unprotected:
        r.repo.update_vms(unprotected, lambda _, cur: cur.model_copy(update={"excluded": "no pre-change snapshot"}))
        r.decide([Decision(DecisionKind.EXCLUDE_VM, f"{short(v)}: no pre-change snapshot could be taken, so it could "
                           "not be restored; left on the old configuration", v) for v in unprotected])
    todo = [v for v in ids if items[v].apply is None and items[v].snapshot is not None]
    if not todo:
        return Began()
    fresh = [v for v in todo if not items[v].applying]  # a begin run again keeps the baselines it took
    if fresh:
        now = r.now
        frame = svc.telemetry.signals(fresh, now - timedelta(minutes=PRE_CHANGE_MINUTES), now)
        base_err = nanmean_rows(frame.signals["error_count"])
        base_cpu = nanmean_rows(frame.signals["cpu_pct"])
        before = {v: (None if np.isnan(e) else round(float(e), 3), None if np.isnan(c) else round(float(c), 2))
                  for v, e, c in zip(fresh, base_err, base_cpu, strict=True)}
        r.repo.update_vms(fresh, lambda k, cur: cur.model_copy(update={
            "baseline_errors": before[k][0], "baseline_cpu": before[k][1], "config": Config.NEW, "applying": True}))
    change = ChangeSpec.from_dict(r.record.request.change.model_dump())
    try:
        return Began(operation=svc.operations.begin_apply(
            operation_key(r.id, "apply", f"w{payload.wave:02d}c{payload.chunk:02d}"), todo, change,
            timeout_minutes=r.policy.apply_timeout_minutes))
    except ShadowRolloutError as exc:
        _refused(r, todo, str(exc))
        raise


def _refused(r: Rollout, todo: list[str], refused: str) -> None:
    """The batch was refused as a whole (per-VM failures come back as results): nothing was applied."""
    r.repo.update_vms(todo, lambda _, cur: cur.model_copy(update={
        "config": Config.OLD, "applying": False, "apply_error": refused}))


def apply_wave(svc: Services, payload: WaveChunkOp) -> ApplyWaveResult:
    """Record what the chunk's apply did, once its operation ended (or the wait for it timed out)."""
    r = Rollout(svc, payload.rollout_id, Step.APPLY_WAVE, f"w{payload.wave:02d}c{payload.chunk:02d}")
    items = r.vms()
    ids = chunk(r.repo.wave(payload.wave), payload.chunk)
    excluded = sum(1 for v in ids if items[v].apply is None and items[v].excluded)
    todo = [v for v in ids if items[v].apply is None and items[v].snapshot is not None]
    op = payload.operation
    if not todo or op is None:
        return ApplyWaveResult(applied=0, failed=0, excluded=excluded)
    results = apply_outcome(svc, op, todo)
    if results is None:
        _refused(r, todo, op.message or f"the apply ended {op.state}")
        raise AzureOperationError(f"apply of wave {payload.wave + 1} chunk {payload.chunk} ended {op.state}: "
                                  f"{op.message}", operation="apply")
    done = op.ended_at or r.now
    applied: dict[str, ApplyResult] = {a.vm_id: a for a in results}
    r.repo.update_vms(applied, lambda k, cur: cur.model_copy(update={
        "apply": applied[k], "applied_at": done, "applying": False, "actions": [*cur.actions, VmAction.APPLY]}))
    failed = sum(1 for a in results if a.status is not ApplyStatus.OK)
    return ApplyWaveResult(applied=len(results), failed=failed, excluded=excluded)


def _peer_error_rate(r: Rollout, items: dict[str, VmItem]) -> float | None:
    """Median error-log rate now of VMs still on the old configuration (skipped or not yet reached)."""
    untouched = heapq.nsmallest(PEER_SAMPLE, (k for k, v in items.items() if v.apply is None))  # sorted()[:n]
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
        verdict = _recorded(found.verdict)
        decisions.append(verdict)
        if found.answer.halt:
            r.update(halted=True, phase=RolloutPhase.HALTED_IN_PRODUCTION)
            publish_outcome(r, "halted", verdict.reason, where="production", failing=found.failing_total,
                            changed=found.answer.changed)
    if found.withdrawal is not None:
        decisions.append(_recorded(found.withdrawal))
    r.decide(decisions)
    if key:
        r.repo.put_memo(key, found.model_copy(update={"done": True}))
    return found.answer


def _assess_production(r: Rollout, between_waves: bool, shadows_condemn: str | None = None) -> CheckMemo:
    """What a production check finds, before it changes anything: failing VMs and the verdict.

    ``shadows_condemn``: the shadows, which lead production, showed the change harmful (that decision's reason):
    it is withdrawn from every changed VM at once, as a surprise in the production watch would withdraw it."""
    items = r.vms()
    changed: list[str] = []  # every VM the change reached; live: those not queued for rollback yet
    live: list[str] = []
    applies: list[ApplyResult] = []
    rates: list[tuple[float | None, float | None]] = []  # each live VM's pre-change rates (health.Baselines)
    for k, v in items.items():  # one pass: a 10,000-VM rollout makes hundreds of checks
        if v.apply is None:
            continue
        changed.append(k)
        if v.rollback is not None:
            continue
        live.append(k)
        if v.apply.status is not ApplyStatus.OK:
            applies.append(v.apply)
        rates.append((v.baseline_errors, v.baseline_cpu))
    baselines = Baselines.of(rates)
    now = r.now
    window = timedelta(minutes=max(r.policy.health_window_minutes, r.policy.flap_window_minutes,
                                   r.policy.error_window_minutes))
    frame = r.svc.telemetry.signals(live, now - window, now) if live else None
    failing = failing_vms(frame, baselines, applies, r.policy, _peer_error_rate(r, items)) if frame is not None else {}
    failing_total = len(changed) - len(live) + len(failing)
    threshold = adaptive_error_threshold(r.record.predicted_rate, r.policy)
    d = assess_changed_vms(len(changed), failing_total, threshold)
    if d.kind is not DecisionKind.HALT_IN_PRODUCTION and frame is not None:
        health = frame.signals["health_ok"]
        d = assess_probe_failures(int(np.sum(health == 0.0)), int(np.sum(~np.isnan(health))), r.policy) or d
    halt, withdraw, verdict = False, False, None
    withdrawal: PastDecision | None = None

    def withdrawn_by(why: Decision) -> PastDecision:
        """The change withdrawn from every changed VM that has not failed yet: they join ``failing``."""
        w = withdraw_change(live, failing, why)
        failing.update(w.data["vms"])
        return _past(w)

    if shadows_condemn is not None and not r.record.withdrawn:
        withdraw, halt = True, True
        verdict = withdrawn_by(Decision(DecisionKind.HALT_IN_PRODUCTION, shadows_condemn))
    elif between_waves:
        halt = d.kind is DecisionKind.HALT_IN_PRODUCTION
        if halt or failing:
            verdict = _past(d)
        if halt and not r.record.withdrawn:  # the same verdict the watch withdraws on: no VM keeps a bad change
            withdraw = True
            withdrawal = withdrawn_by(d)
    elif d.kind is DecisionKind.HALT_IN_PRODUCTION and not r.record.withdrawn:
        withdraw = True  # the watch: failures this surprising withdraw it all
        verdict = withdrawn_by(d)
    return CheckMemo(failing=dict(failing), failing_total=failing_total, verdict=verdict, withdraw=withdraw,
                     withdrawal=withdrawal, answer=CheckResult(failing=len(failing), chunks=chunk_count(len(failing)),
                                                               halt=halt, changed=len(changed)))


def _past(d: Decision) -> PastDecision:
    """A decision kept in a check's memo until it is recorded."""
    return PastDecision(kind=d.kind, reason=d.reason, subject=d.subject, data=dict(d.data))


def _recorded(p: PastDecision) -> Decision:
    return Decision(p.kind, p.reason, p.subject, dict(p.data))


def production_done(svc: Services, payload: RolloutRef) -> ProductionDoneResult:
    """Announce that every wave is done, before the production watch: what a pipeline waits for."""
    r = Rollout(svc, payload.rollout_id, Step.PRODUCTION_DONE)
    items = r.vms().values()
    changed = sum(1 for v in items if v.apply is not None)
    rolled = sum(1 for v in items if v.rollback is not None)
    watch = r.policy.production_watch_minutes
    starts: dict[int, float] = {}
    for v in items:
        if v.wave is not None and v.applied_at is not None:
            starts[v.wave] = min(starts.get(v.wave, math.inf), r.minute(v.applied_at))
    cadence = watch_cadence(list(starts.values()), r.policy)
    r.decide([Decision(DecisionKind.WATCH_CADENCE, cadence.reason, data={"interval": cadence.interval_minutes,
                                                                         "wave_starts": sorted(starts.values())})])
    publish_outcome(r, "production_done", f"every wave done: {changed} VMs changed, {rolled} rolled back; "
                    f"production is watched for {watch:g} more minutes", changed=changed, rolled_back=rolled,
                    watch_minutes=watch)
    return ProductionDoneResult(changed=changed, rolled_back=rolled, watch_interval=cadence.interval_minutes)


def halt(svc: Services, payload: HaltInput) -> HaltResult:
    """Stop before the next wave for a reason found outside the error threshold."""
    r = Rollout(svc, payload.rollout_id, Step.HALT, f"w{payload.wave:02d}" if payload.wave is not None else "")
    r.update(halted=True, phase=RolloutPhase.HALTED_IN_PRODUCTION)
    r.decide([Decision(DecisionKind.HALT_IN_PRODUCTION, payload.reason)])
    publish_outcome(r, "halted", payload.reason, where="production")
    return HaltResult(halt=True, reason=payload.reason)


def _to_restore(r: Rollout, batch: str, chunk_no: int) -> tuple[dict[str, VmItem], list[SnapshotInfo]]:
    items = r.vms()
    ids = chunk(r.repo.batch(batch), chunk_no)
    todo = [k for k in ids if (rb := items[k].rollback) is not None and rb.state is RollbackState.QUEUED]
    snaps: list[SnapshotInfo] = []
    for k in todo:
        snap = items[k].snapshot
        if snap is None:
            raise RuntimeError(f"{k} was changed without a pre-change snapshot")
        snaps.append(snap)
    return items, snaps


def begin_restore_vms(svc: Services, payload: BatchChunkRef) -> Began:
    """Begin restoring one chunk of a rollback batch from pre-change snapshots (then the post-rollback script)."""
    scope = f"{payload.batch}c{payload.chunk:02d}"
    r = Rollout(svc, payload.rollout_id, Step.RESTORE_VMS, scope + BEGIN)
    _, snaps = _to_restore(r, payload.batch, payload.chunk)
    if not snaps:
        return Began()
    return Began(operation=svc.operations.begin_restore(operation_key(r.id, "restore", scope), snaps,
                                                        script=r.policy.post_rollback_script))


def restore_vms(svc: Services, payload: BatchChunkOp) -> RestoreChunkResult:
    """Record the restores of one chunk of a rollback batch and their post-rollback scripts."""
    r = Rollout(svc, payload.rollout_id, Step.RESTORE_VMS, f"{payload.batch}c{payload.chunk:02d}")
    _, snaps = _to_restore(r, payload.batch, payload.chunk)
    op = payload.operation
    if not snaps or op is None:
        return RestoreChunkResult(restored=0)
    if op.state is OperationState.SUCCEEDED:
        outcome = svc.operations.restore_results(op.handle, snaps)
        results, scripts = {x.vm_id: x for x in outcome.results}, outcome.scripts
    else:  # left for an operator, as a failed restore is
        results = {s.vm_id: RestoreResult(s.vm_id, False, 1, f"restore {op.state}: {op.message}") for s in snaps}
        scripts = {}
    for x in results.values():
        observability.rollback_finished(r.id, x.vm_id, ok=x.ok, message=x.message)
    ok = [k for k, x in results.items() if x.ok]

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
    states = {k: rb.state for k in r.repo.batch(payload.batch) if (rb := items[k].rollback) is not None}
    # a re-run reports what the first run judged, and judges only what it had not
    todo = [k for k, s in states.items() if s is RollbackState.RESTORED]
    ids = [k for k, s in states.items() if s in (RollbackState.RESTORED, RollbackState.VERIFIED,
                                                 RollbackState.UNHEALTHY)]
    unhealthy = (not_serving(r, todo) if todo else set()) | {k for k, s in states.items()
                                                              if s is RollbackState.UNHEALTHY}

    def verified(k: str, cur: VmItem) -> VmItem | None:
        if cur.rollback is None:
            return None
        state = RollbackState.UNHEALTHY if k in unhealthy else RollbackState.VERIFIED
        return cur.model_copy(update={"rollback": cur.rollback.model_copy(update={"state": state})})

    r.repo.update_vms(todo, verified)
    decisions = [Decision(DecisionKind.RECOVERED, f"{len(ids) - len(unhealthy)}/{len(ids)} restored VMs of batch "
                          f"{payload.batch} healthy after the post-rollback script")]
    decisions += [Decision(DecisionKind.RESTORE_UNHEALTHY, f"{short(k)} still failing its health probe after "
                           "restore; left for an operator", k) for k in sorted(unhealthy)]
    r.decide(decisions)
    publish_outcome(r, "rollback", decisions[0].reason, seq=payload.batch, batch=payload.batch,
                    restored=len(ids), verified=len(ids) - len(unhealthy), unhealthy=len(unhealthy))
    return VerifyResult(verified=len(ids) - len(unhealthy), unhealthy=len(unhealthy))
