"""Activity handlers, one module per phase: each does one step of a rollout against the ports and records it.

    start       start_rollout, claim_targets, resolve_gate, abort_rollout, finish
    shadows     create_shadows, drive_shadow_load, apply_to_shadows, teardown_shadows
    decide      analyse_shadows, decide, watch_shadows (the shadows judged through the waves)
    bake        add_shadows (and the sequential looks analyse_shadows and watch_shadows take)
    production  snapshot_ahead (during the bake), discard_snapshots, prepare, snapshot_wave, apply_wave,
                check_production, production_done, halt, restore_vms, verify_recovered
    capacity    reserve_capacity, release_capacity, settle_capacity
    cleanup     release_leases (and the record of a rollout that failed before it had one)

A handler takes the wired Services and its typed payload and returns a small typed result; per-VM data stays
in the rollout store, so orchestration histories stay small whatever the fleet size. Every handler is safe
to run again (a Durable retry or a replay after a crash): work already recorded is skipped. The chunks of
one fan-out may run at the same time: each writes its own rows, and every row update is optimistic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ...services import Services
from ..operations import AheadOp, BatchChunkOp, ChunkOp, RolloutOp, StatusQuery, WaveChunkOp
from ..state import (
    AbortInput,
    AheadRef,
    BatchChunkRef,
    BatchRef,
    CheckInput,
    ChunkRef,
    FinishInput,
    GateInput,
    HaltInput,
    Model,
    RolloutRef,
    StartInput,
    WatchShadowsInput,
    WaveChunkRef,
)
from .bake import add_shadows
from .capacity import release_capacity, reserve_capacity, settle_capacity
from .cleanup import release_leases
from .decide import analyse_shadows, decide, watch_shadows
from .longops import operation_status
from .production import (
    apply_wave,
    begin_apply_wave,
    begin_prepare,
    begin_restore_vms,
    begin_snapshot_ahead,
    begin_snapshot_wave,
    check_production,
    discard_snapshots,
    halt,
    prepare,
    production_done,
    restore_vms,
    snapshot_ahead,
    snapshot_wave,
    verify_recovered,
)
from .shadows import (
    apply_to_shadows,
    begin_apply_to_shadows,
    begin_create_shadows,
    create_shadows,
    drive_shadow_load,
    teardown_shadows,
)
from .start import abort_rollout, claim_targets, finish, resolve_gate, start_rollout

I = TypeVar("I", bound=Model)  # noqa: E741 - the input's model
O = TypeVar("O", bound=Model)  # noqa: E741 - the result's model


@dataclass(frozen=True)
class Activity(Generic[I, O]):
    """A handler with its input model: validates the JSON payload on entry and dumps the result to JSON."""

    handler: Callable[[Services, I], O]
    input: type[I]

    def __call__(self, svc: Services, payload: Any) -> dict[str, Any]:
        return self.handler(svc, self.input.model_validate(payload)).json_dict()


def _table(*activities: Activity[Any, Any]) -> dict[str, Activity[Any, Any]]:
    return {a.handler.__name__: a for a in activities}


ACTIVITIES: dict[str, Activity[Any, Any]] = _table(
    Activity(start_rollout, StartInput), Activity(claim_targets, RolloutRef), Activity(create_shadows, ChunkOp),
    Activity(drive_shadow_load, RolloutRef), Activity(apply_to_shadows, ChunkOp),
    Activity(analyse_shadows, RolloutRef), Activity(decide, RolloutRef), Activity(teardown_shadows, RolloutRef),
    Activity(resolve_gate, GateInput), Activity(abort_rollout, AbortInput), Activity(prepare, RolloutOp),
    Activity(snapshot_wave, WaveChunkOp), Activity(apply_wave, WaveChunkOp), Activity(check_production, CheckInput),
    Activity(halt, HaltInput),
    Activity(production_done, RolloutRef), Activity(reserve_capacity, BatchRef), Activity(restore_vms, BatchChunkOp),
    Activity(verify_recovered, BatchRef), Activity(release_capacity, RolloutRef), Activity(finish, FinishInput),
    Activity(settle_capacity, RolloutRef), Activity(release_leases, RolloutRef),
    # long-running operations: each begun by its begin_ activity, polled by operation_status (the monitor pattern)
    Activity(begin_create_shadows, ChunkRef), Activity(begin_apply_to_shadows, ChunkRef),
    Activity(begin_prepare, RolloutRef), Activity(begin_snapshot_wave, WaveChunkRef),
    Activity(begin_apply_wave, WaveChunkRef), Activity(begin_restore_vms, BatchChunkRef),
    Activity(operation_status, StatusQuery),
    Activity(add_shadows, RolloutRef), Activity(watch_shadows, WatchShadowsInput),
    Activity(begin_snapshot_ahead, AheadRef), Activity(snapshot_ahead, AheadOp),
    Activity(discard_snapshots, RolloutRef),
)
"""Every activity by its Durable name."""

__all__ = [
    "ACTIVITIES",
    "Activity",
    "abort_rollout",
    "add_shadows",
    "analyse_shadows",
    "apply_to_shadows",
    "apply_wave",
    "begin_apply_to_shadows",
    "begin_apply_wave",
    "begin_create_shadows",
    "begin_prepare",
    "begin_restore_vms",
    "begin_snapshot_ahead",
    "begin_snapshot_wave",
    "check_production",
    "claim_targets",
    "create_shadows",
    "decide",
    "discard_snapshots",
    "drive_shadow_load",
    "finish",
    "halt",
    "operation_status",
    "prepare",
    "production_done",
    "release_capacity",
    "release_leases",
    "reserve_capacity",
    "resolve_gate",
    "restore_vms",
    "settle_capacity",
    "snapshot_ahead",
    "snapshot_wave",
    "start_rollout",
    "teardown_shadows",
    "verify_recovered",
    "watch_shadows",
]
