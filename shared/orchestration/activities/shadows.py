"""The shadow pool: create the shadows (one chunk each), drive their load, apply the change, tear them down."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np

from ... import observability
from ...domain.bake import baseline_wait
from ...domain.decisions import Decision
from ...domain.kinds import DecisionKind
from ...domain.model import ApplyResult, ApplyStatus, ChangeSpec, ShadowState, Stratum
from ...services import Services
from ..chunks import chunk, chunk_count
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


def regular_quota(cap: int, plans: int, index: int) -> int:
    """Chunk ``index``'s share of the cap on regular-priced shadows.

    The chunks run at the same time, so none can count what the others made: each gets a fixed share
    (the cap spread evenly, the remainder to the first chunks), which also keeps the choice the same
    whatever order they happen to run in.
    """
    k = max(1, chunk_count(plans))
    return cap // k + (1 if index < cap % k else 0)


def create_shadows(svc: Services, payload: ChunkRef) -> CreateShadowsResult:
    r = Rollout(svc, payload.rollout_id, Step.CREATE_SHADOWS, f"c{payload.chunk:02d}")
    every = r.repo.plans()
    plans = chunk(every, payload.chunk)
    mine = {i for i, _ in plans}
    existing = [v for v in r.repo.shadows().values() if v.plan in mine]
    done = {v.plan for v in existing}
    todo = [(i, p) for i, p in plans if i not in done]
    regular_now = sum(1 for v in existing if v.info.state is not ShadowState.FAILED and not v.info.spot)
    quota = regular_quota(r.policy.max_regular_shadows, len(every), payload.chunk)
    created = svc.shadows.create([replace(p, ordinal=i + 1) for i, p in todo], rollout_id=r.id,
                                 spot_fallback=r.policy.spot_fallback,
                                 max_regular=max(0, quota - regular_now)) if todo else []
    first_extra = len(every) - r.record.extra_shadows_planned  # plans added to ambiguous strata come last
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
    """Drive each shadow not yet driven at its source VM's recent utilisation (estimated from its CPU); the first
    call also starts the baseline and says how long it lasts (:func:`domain.bake.baseline_wait`)."""
    r = Rollout(svc, payload.rollout_id, Step.DRIVE_SHADOW_LOAD)
    items = r.repo.shadows()
    shadows = {k: s.info for k, s in items.items() if s.info.state is ShadowState.RUNNING and s.load is None}
    sources = sorted({s.source_vm_id for s in shadows.values()})
    now = r.now
    util: dict[str, float] = {}
    if sources:
        frame = svc.telemetry.signals(sources, now - timedelta(minutes=SOURCE_LOAD_MINUTES), now)
        cpu = nanmean_rows(frame.signals["cpu_pct"]) / 100.0
        util = {v: (float(c) if not np.isnan(c) else DEFAULT_UTILISATION) for v, c in zip(sources, cpu, strict=True)}
    targets = {k: round(min(1.0, util[s.source_vm_id]), 4) for k, s in shadows.items()}
    if targets:
        svc.shadow_load.drive(targets)
        r.repo.update_shadows(targets, lambda k, cur: cur.model_copy(update={"load": targets[k]}))
    treated = {v.info.stratum_key for v in items.values() if v.role is ShadowRole.TREATED}
    twins = {Stratum.from_key(v.info.stratum_key).twin_group for k, v in items.items()
             if v.role is ShadowRole.CONTROL and v.info.state is ShadowState.RUNNING and not k.startswith("failed:")}
    wait = baseline_wait(sorted(treated), twins, r.policy)
    mean = sum(targets.values()) / len(targets) if targets else 0.0
    if r.record.baseline_start is not None and r.record.extra_shadows_planned:  # added later: no new baseline
        r.decide([Decision(DecisionKind.SHADOW_LOAD, f"{len(targets)} added shadows driven at their sources' "
                           f"utilisation (mean {mean:.2f})")] if targets else [])
        return DriveResult(driven=len(targets), baseline_minutes=0)
    if r.record.baseline_start is not None:  # run again: the baseline began; answer as the first run did
        return DriveResult(driven=len(targets), baseline_minutes=wait.minutes)
    r.update(baseline_start=r.now + timedelta(minutes=1), phase=RolloutPhase.BASELINE)
    r.decide([Decision(DecisionKind.SHADOW_LOAD, f"{len(targets)} shadows driven at their sources' utilisation "
                       f"(mean {mean:.2f}) for a {wait.minutes}-minute baseline"),
              Decision(DecisionKind.BASELINE, wait.reason, data={"minutes": wait.minutes})])
    return DriveResult(driven=len(targets), baseline_minutes=wait.minutes)


def apply_to_shadows(svc: Services, payload: ChunkRef) -> ApplyShadowsResult:
    r = Rollout(svc, payload.rollout_id, Step.APPLY_TO_SHADOWS, f"c{payload.chunk:02d}")
    if payload.chunk == 0 and r.record.shadow_apply_at is None:
        r.update(shadow_apply_at=r.now, phase=RolloutPhase.BAKE)
    items = r.repo.shadows()
    keys = chunk(sorted(items), payload.chunk)
    status = svc.shadows.status([k for k in keys if not k.startswith("failed:")])
    todo = [k for k in keys if status.get(k) is ShadowState.RUNNING and items[k].apply is None
            and items[k].role is ShadowRole.TREATED]
    change = ChangeSpec.from_dict(r.record.request.change.model_dump())
    results = svc.fleet.apply_change(todo, change, timeout_minutes=r.policy.apply_timeout_minutes) if todo else []
    applied: dict[str, ApplyResult] = {a.vm_id: a for a in results}
    r.repo.update_shadows(applied, lambda k, cur: cur.model_copy(update={"apply": applied[k]}))
    evicted = [k for k in keys if status.get(k) is ShadowState.EVICTED]
    if evicted:
        r.decide([Decision(DecisionKind.SHADOW_EVICTED, f"{len(evicted)} shadows evicted before the change")])
    failed = sum(1 for a in results if a.status is not ApplyStatus.OK)
    slowest = max((a.duration_s for a in results), default=0.0)
    r.repo.put_shadow_chunk(payload.chunk, ShadowChunk(applied_at=r.now))
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
