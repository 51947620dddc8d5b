"""The bake's sub-steps of the rollout orchestration: sequential looks on durable timers, and shadows added to
ambiguous strata before the decision. They only yield; the decisions are in the activities they call.

    bake:       timer(check) → analyse_shadows, until the one halt rule halts, the sequential tests end the bake
                (every stratum decided, or the pooled shadows show no harm), the maximum bake, or an abort
                └─ a look chose production VMs to snapshot: snapshot_ahead (sub-orchestration, raced with the timers)
    ambiguous:  add_shadows → create_shadows ×chunks → drive_shadow_load → apply_to_shadows ×chunks → bake again
                (at most once, at most ``max_extra_shadows``)
    lead:       before the last wave: timer(check) → watch_shadows, until the shadows have baked ``bake_minutes``
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from ..domain.policy import RolloutPolicy
from .operations import WAIT_APPLY, WAIT_SHADOWS, WAIT_SNAPSHOTS, run_long
from .state import (
    AddShadowsResult,
    AheadRef,
    AnalysisResult,
    ChunkRef,
    RolloutPhase,
    RolloutRef,
    SnapshotResult,
    WatchShadowsInput,
    WatchShadowsResult,
)

Orchestration = Any
AHEAD = "snapshot_ahead_orchestrator"
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=30_000, max_number_of_attempts=3)


def _after(context: df.DurableOrchestrationContext, minutes: float) -> datetime:
    t: datetime = context.current_utc_datetime
    return t + timedelta(minutes=minutes)


@dataclass
class Ahead:
    """The passes of production snapshots taken while the shadows bake (:mod:`shared.domain.ahead`): each a
    sub-orchestration (``snapshot_ahead`` begun, polled, recorded), raced with the bake's timers so that the looks
    keep their cadence; one at a time, a new one when a look chose VMs still without a snapshot."""

    rollout_id: str
    passes: list[Any] = field(default_factory=list)

    def running(self) -> list[Any]:
        return [t for t in self.passes if not t.is_completed]

    def start(self, context: df.DurableOrchestrationContext) -> None:
        n = len(self.passes)
        self.passes.append(context.call_sub_orchestrator(
            AHEAD, AheadRef(rollout_id=self.rollout_id, round=n).json_dict(), f"{context.instance_id}:ahead:{n}"))

    def wait(self, context: df.DurableOrchestrationContext) -> Orchestration:
        """Let the passes still running end (before production, or before their snapshots are deleted)."""
        for task in self.running():
            try:
                yield task
            except Exception:  # what a pass did not take, prepare or its wave's snapshot step takes
                continue


def snapshot_ahead_orchestrator(context: df.DurableOrchestrationContext) -> Orchestration:
    """One pass of the snapshots taken during the bake. It never fails its parent: a VM it could not snapshot is
    taken by ``prepare`` or its wave's snapshot step (and excluded from its wave, with a decision, if that fails)."""
    inp = AheadRef.model_validate(context.get_input())
    try:
        done = yield from run_long(context, "snapshot_ahead", [inp], WAIT_SNAPSHOTS, RETRY)
    except Exception:
        return SnapshotResult(snapshots=0).json_dict()
    return SnapshotResult.model_validate(done[0]).json_dict()


def bake(context: df.DurableOrchestrationContext, ref: RolloutRef, policy: RolloutPolicy, abort: Any,
         status: Callable[..., None], minutes: float | None = None, early: bool = True,
         ahead: Ahead | None = None) -> Orchestration:
    """Look every ``bake_check_minutes`` until the evidence ends the bake or ``minutes`` (the maximum bake) pass.

    ``early``: the sequential tests may end it before ``minutes``. ``ahead``: when a look chose production VMs to
    snapshot before the decision, a pass begins while the bake goes on. Returns the last analysis, or None when an
    operator's abort came first."""
    end = _after(context, policy.bake_minutes if minutes is None else minutes)
    analysis: AnalysisResult | None = None
    while True:
        status(phase=RolloutPhase.BAKE)
        timer = context.create_timer(min(_after(context, policy.bake_check_minutes), end))
        winner = yield context.task_any([timer, abort, *(ahead.running() if ahead is not None else [])])
        while winner != timer and winner != abort:  # a pass of snapshots ended: the look is still due
            winner = yield context.task_any([timer, abort, *(ahead.running() if ahead is not None else [])])
        if winner == abort:
            timer.cancel()
            return None
        analysis = AnalysisResult.model_validate((yield context.call_activity("analyse_shadows", ref.json_dict())))
        status(analysis=analysis)
        if ahead is not None and analysis.snapshot_ahead > 0 and not analysis.halt and not ahead.running():
            ahead.start(context)
        if analysis.halt or (early and analysis.bake_done) or context.current_utc_datetime >= end:
            return analysis


def add_shadows(context: df.DurableOrchestrationContext, ref: RolloutRef, policy: RolloutPolicy, abort: Any,
                status: Callable[..., None], ahead: Ahead | None = None) -> Orchestration:
    """Clone more production VMs of the ambiguous strata, change them, and bake again before the decision."""
    added = AddShadowsResult.model_validate((yield context.call_activity("add_shadows", ref.json_dict())))
    if not added.added:
        return None
    status(phase=RolloutPhase.SHADOW_POOL)
    yield from run_long(context, "create_shadows", [ChunkRef(rollout_id=ref.rollout_id, chunk=c)
                                                    for c in range(added.chunks)], WAIT_SHADOWS, RETRY)
    yield context.call_activity("drive_shadow_load", ref.json_dict())
    status(phase=RolloutPhase.APPLY_TO_SHADOWS)
    yield from run_long(context, "apply_to_shadows", [ChunkRef(rollout_id=ref.rollout_id, chunk=c)
                                                      for c in range(added.chunks)], WAIT_APPLY)
    # the added shadows count through their failures: an apply failure shows at once, the health rules within
    # the minimum bake
    result = yield from bake(context, ref, policy, abort, status, minutes=float(max(policy.min_bake_minutes, 1)),
                            early=False, ahead=ahead)
    return result


def hold_for_lead(context: df.DurableOrchestrationContext, ref: RolloutRef, policy: RolloutPolicy,
                  until: datetime, wave: int, abort: Any) -> Orchestration:
    """Before the last (largest) wave, let the shadows lead it by the whole ``bake_minutes``: look at them every
    ``bake_check_minutes`` until ``until``. The early, small waves go while the shadows still bake; the bulk of
    production never has less lead than the fixed bake gave. Returns the halting look, or None."""
    while context.current_utc_datetime < until and not abort.is_completed:
        timer = context.create_timer(min(_after(context, policy.bake_check_minutes), until))
        winner = yield context.task_any([timer, abort])
        if winner == abort:
            timer.cancel()
            return None
        seen = WatchShadowsResult.model_validate((yield context.call_activity("watch_shadows", WatchShadowsInput(
            rollout_id=ref.rollout_id, wave=wave).json_dict())))
        if seen.halt:
            return seen
    return None
