"""The shadow pool: create the shadows (one chunk each), drive their load, apply the change, tear them down."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np

from ... import observability
from ...domain.bake import baseline_wait
from ...domain.decisions import Decision
from ...domain.kinds import DecisionKind
from ...domain.model import ApplyResult, ApplyStatus, ChangeSpec, ShadowInfo, ShadowPlan, ShadowState, Stratum
from ...domain.operations import OperationState
from ...services import Services
from ..chunks import chunk, chunk_count
from ..operations import Began, ChunkOp
from ..repository import Step
from ..state import (
    ApplyShadowsResult,
    ChunkRef,
    CreateShadowsResult,
    DriveResult,
    RolloutPhase,
    RolloutRef,
    ShadowChunk,
    ShadowItem,
    ShadowRole,
    TeardownResult,
)
from .common import DEFAULT_UTILISATION, SOURCE_LOAD_MINUTES, Rollout, nanmean_rows
from .longops import BEGIN, apply_outcome, operation_key


def regular_quota(cap: int, plans: int, index: int) -> int:
    """Chunk ``index``'s share of the cap on regular-priced shadows.

    The chunks run at the same time, so none can count what the others made: each gets a fixed share
    (the cap spread evenly, the remainder to the first chunks), which also keeps the choice the same
    whatever order they happen to run in.
    """
    k = max(1, chunk_count(plans))
    return cap // k + (1 if index < cap % k else 0)


def _shadows_to_make(r: Rollout, chunk_no: int) -> tuple[list[tuple[int, ShadowPlan]], int]:
    """The chunk's plans with no shadow yet (numbered by their place in the pool), and its regular-price quota."""
    every = r.repo.plans()
    plans = chunk(every, chunk_no)
    mine = {i for i, _ in plans}
    existing = [v for v in r.repo.shadows().values() if v.plan in mine]
    done = {v.plan for v in existing}
    todo = [(i, replace(p, ordinal=i + 1)) for i, p in plans if i not in done]
    regular_now = sum(1 for v in existing if v.info.state is not ShadowState.FAILED and not v.info.spot)
    quota = regular_quota(r.policy.max_regular_shadows, len(every), chunk_no)
    return todo, max(0, quota - regular_now)


def begin_create_shadows(svc: Services, payload: ChunkRef) -> Began:
    r = Rollout(svc, payload.rollout_id, Step.CREATE_SHADOWS, f"c{payload.chunk:02d}{BEGIN}")
    todo, max_regular = _shadows_to_make(r, payload.chunk)
    if not todo:
        return Began()
    return Began(operation=svc.operations.begin_shadows(
        operation_key(r.id, "shadows", f"c{payload.chunk:02d}"), [p for _, p in todo], rollout_id=r.id,
        spot_fallback=r.policy.spot_fallback, max_regular=max_regular))


def create_shadows(svc: Services, payload: ChunkOp) -> CreateShadowsResult:
    r = Rollout(svc, payload.rollout_id, Step.CREATE_SHADOWS, f"c{payload.chunk:02d}")
    todo, _ = _shadows_to_make(r, payload.chunk)
    op = payload.operation
    if not todo or op is None:
        return CreateShadowsResult(created=0, failed=0, regular=0)
    plans = [p for _, p in todo]
    if op.state is OperationState.SUCCEEDED:
        created = svc.operations.shadow_results(op.handle, plans)
    else:  # not made in time (or refused as a whole): those strata go without a shadow, as when Spot is refused
        created = [ShadowInfo("", p.source_vm_id, p.stratum_key, p.sku, p.zone, False, ShadowState.FAILED,
                              f"shadow creation {op.state}: {op.message}") for p in plans]
    first_extra = (r.record.extra_shadows_base if r.record.extra_shadows_planned  # added plans come last
                   else len(r.repo.plans()))
    r.repo.put_shadows({s.shadow_id or f"failed:{i}": ShadowItem(info=s, plan=i, role=ShadowRole(p.role),
                                                                 extra=i >= first_extra)
                        for (i, p), s in zip(todo, created, strict=True)})
    failed = [s for s in created if s.state is ShadowState.FAILED]
    regular = [s for s in created if s.state is ShadowState.RUNNING and (not s.spot or s.message)]
    observability.shadows_created(r.id, spot=len(created) - len(failed) - len(regular), regular=len(regular),
                                  failed=len(failed))
    decisions = [Decision(DecisionKind.SHADOW_UNAVAILABLE,
                          f"no shadow for {Stratum.from_key(s.stratum_key).label}: {s.message}", s.stratum_key)
                 for s in failed]
    decisions += [Decision(DecisionKind.SHADOW_REGULAR_PRICE if not s.spot else DecisionKind.SHADOW_FAMILY_SIZE,
                           f"{Stratum.from_key(s.stratum_key).label}: {s.message}", s.stratum_key) for s in regular]
    r.decide(decisions)
    return CreateShadowsResult(created=len(created) - len(failed), failed=len(failed), regular=len(regular))


def drive_shadow_load(svc: Services, payload: RolloutRef) -> DriveResult:
    """Drive each running shadow at its source VM's recent utilisation (estimated from its CPU). The first call
    also starts the baseline and says how long it lasts (:func:`domain.bake.baseline_wait`); a call after shadows
    were added to ambiguous strata drives those too and starts no new baseline.

    Safe to run twice: each target is measured once and written ahead of the drive (targets are set, not added),
    so a re-run drives the same targets and answers as the first run did. Measuring again at a later moment would
    give other targets (and, for a change whose effect depends on load, other verdicts) to a rollout that a
    redelivery merely delayed.
    """
    r = Rollout(svc, payload.rollout_id, Step.DRIVE_SHADOW_LOAD)
    items = r.repo.shadows()
    running = {k: s for k, s in items.items() if s.info.state is ShadowState.RUNNING}
    started = r.record.baseline_start
    added = started is not None and r.record.extra_shadows_planned > 0
    known = {k: s.load for k, s in running.items() if s.load is not None}
    if started is None or added:
        measured = _source_load(r, {k: s.info.source_vm_id for k, s in running.items() if s.load is None})
        if measured:
            r.repo.update_shadows(measured, lambda k, cur: cur.model_copy(update={"load": measured[k]}))
        targets = {**known, **measured}
        if targets:
            svc.shadow_load.drive(targets)
    else:
        targets = known
    if added:  # the shadows added to ambiguous strata: no new baseline
        extra = {k: v for k, v in targets.items() if running[k].extra}
        mean_extra = sum(extra.values()) / len(extra) if extra else 0.0
        r.decide([Decision(DecisionKind.SHADOW_LOAD, f"{len(extra)} added shadows driven at their sources' "
                           f"utilisation (mean {mean_extra:.2f})")] if extra else [])
        return DriveResult(driven=len(extra), baseline_minutes=0)
    treated = {v.info.stratum_key for v in items.values() if v.role is ShadowRole.TREATED}
    twins = {Stratum.from_key(v.info.stratum_key).twin_group for k, v in items.items()
             if v.role is ShadowRole.CONTROL and v.info.state is ShadowState.RUNNING and not k.startswith("failed:")}
    wait = baseline_wait(sorted(treated), twins, r.policy)
    if started is None:
        started = r.now + BASELINE_DELAY
        r.update(baseline_start=started, phase=RolloutPhase.BASELINE)
    mean = sum(targets.values()) / len(targets) if targets else 0.0
    r.decide([Decision(DecisionKind.SHADOW_LOAD, f"{len(targets)} shadows driven at their sources' utilisation "
                       f"(mean {mean:.2f}) for a {wait.minutes}-minute baseline"),
              Decision(DecisionKind.BASELINE, wait.reason, data={"minutes": wait.minutes})],
             at=started - BASELINE_DELAY)
    return DriveResult(driven=len(targets), baseline_minutes=wait.minutes)


BASELINE_DELAY = timedelta(minutes=1)
"""The baseline starts a minute after the drive, once the shadows run at their targets."""


def _source_load(r: Rollout, sources_of: dict[str, str]) -> dict[str, float]:
    """Each shadow's target: its source VM's mean CPU over the last half hour, as a utilisation 0..1."""
    if not sources_of:
        return {}
    sources = sorted(set(sources_of.values()))
    now = r.now
    frame = r.svc.telemetry.signals(sources, now - timedelta(minutes=SOURCE_LOAD_MINUTES), now)
    cpu = nanmean_rows(frame.signals["cpu_pct"]) / 100.0
    util = {v: (float(c) if not np.isnan(c) else DEFAULT_UTILISATION) for v, c in zip(sources, cpu, strict=True)}
    return {k: round(min(1.0, util[v]), 4) for k, v in sources_of.items()}


def begin_apply_to_shadows(svc: Services, payload: ChunkRef) -> Began:
    r = Rollout(svc, payload.rollout_id, Step.APPLY_TO_SHADOWS, f"c{payload.chunk:02d}{BEGIN}")
    if payload.chunk == 0 and r.record.shadow_apply_at is None:
        r.update(shadow_apply_at=r.now, phase=RolloutPhase.BAKE)
    items = r.repo.shadows()
    keys = chunk(sorted(items), payload.chunk)
    status = svc.shadows.status([k for k in keys if not k.startswith("failed:")])
    todo = [k for k in keys if status.get(k) is ShadowState.RUNNING and items[k].apply is None
            and items[k].role is ShadowRole.TREATED]
    evicted = [k for k in keys if status.get(k) is ShadowState.EVICTED]
    if evicted:
        r.decide([Decision(DecisionKind.SHADOW_EVICTED, f"{len(evicted)} shadows evicted before the change")])
    if not todo:
        return Began()
    change = ChangeSpec.from_dict(r.record.request.change.model_dump())
    return Began(operation=svc.operations.begin_apply(operation_key(r.id, "apply-shadows", f"c{payload.chunk:02d}"),
                                                      todo, change, timeout_minutes=r.policy.apply_timeout_minutes))


def apply_to_shadows(svc: Services, payload: ChunkOp) -> ApplyShadowsResult:
    r = Rollout(svc, payload.rollout_id, Step.APPLY_TO_SHADOWS, f"c{payload.chunk:02d}")
    items = r.repo.shadows()
    keys = chunk(sorted(items), payload.chunk)
    op = payload.operation
    results: list[ApplyResult] = []
    if op is not None:
        todo = [k for k in keys if not k.startswith("failed:") and items[k].apply is None
                and items[k].role is ShadowRole.TREATED]
        if op.state is OperationState.TIMED_OUT:  # only those still there were waited for
            status = svc.shadows.status(todo)
            todo = [k for k in todo if status.get(k) in (ShadowState.RUNNING, ShadowState.EVICTING)]
        results = (apply_outcome(svc, op, todo) if todo else []) or []
    applied: dict[str, ApplyResult] = {a.vm_id: a for a in results}
    r.repo.update_shadows(applied, lambda k, cur: cur.model_copy(update={"apply": applied[k]}))
    failed = sum(1 for a in results if a.status is not ApplyStatus.OK)
    slowest = max((a.duration_s for a in results), default=0.0)
    r.repo.put_shadow_chunk(payload.chunk, ShadowChunk(applied_at=(op.ended_at if op is not None else None) or r.now))
    return ApplyShadowsResult(applied=len(results), failed=failed, slowest_s=slowest)


def teardown_shadows(svc: Services, payload: RolloutRef) -> TeardownResult:
    r = Rollout(svc, payload.rollout_id, Step.TEARDOWN_SHADOWS)
    items = r.repo.shadows()
    live = [k for k, v in items.items() if not k.startswith("failed:") and not v.deleted]
    removed = svc.shadows.teardown(live) if live else 0
    r.repo.update_shadows(live, lambda _, cur: cur.model_copy(update={"deleted": True}))
    if live:
        r.decide([Decision(DecisionKind.TEARDOWN_SHADOWS, f"{removed} shadows deleted with their disks and "
                           "snapshots")])
    return TeardownResult(deleted=removed)
