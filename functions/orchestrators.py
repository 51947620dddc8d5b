"""Orchestrator bindings. The generator functions live in shared.orchestration.rollout."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from shared.orchestration import bake_flow, rollout

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context", orchestration=rollout.ROLLOUT)
def rollout_orchestrator(context: df.DurableOrchestrationContext) -> Any:
    return rollout.rollout_orchestrator(context)


@bp.orchestration_trigger(context_name="context", orchestration=rollout.WAVE)
def wave_orchestrator(context: df.DurableOrchestrationContext) -> Any:
    return rollout.wave_orchestrator(context)


@bp.orchestration_trigger(context_name="context", orchestration=rollout.WATCH)
def watch_orchestrator(context: df.DurableOrchestrationContext) -> Any:
    return rollout.watch_orchestrator(context)


@bp.orchestration_trigger(context_name="context", orchestration=rollout.RECOVER)
def recover_orchestrator(context: df.DurableOrchestrationContext) -> Any:
    return rollout.recover_orchestrator(context)


@bp.orchestration_trigger(context_name="context", orchestration=bake_flow.AHEAD)
def snapshot_ahead_orchestrator(context: df.DurableOrchestrationContext) -> Any:
    return bake_flow.snapshot_ahead_orchestrator(context)
