"""The simulator's adapters: the ports implemented over a :class:`FleetWorld`.

They see the world only as Azure would show it: operations that take time, and telemetry up to now.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from ...domain.errors import AzureOperationError, NotFound
from ...domain.model import (
    ApplyResult,
    ChangeSpec,
    RestoreResult,
    ShadowInfo,
    ShadowPlan,
    ShadowState,
    SignalFrame,
    SnapshotInfo,
    VmInfo,
)
from ...domain.naming import rollout_label, shadow_name
from ...domain.resource_id import parse_scale_set_id
from ...domain.scale_set_limits import ScaleSetSize
from ...ports import DiskSnapshots, Fleet, ShadowLoad, ShadowPool, Telemetry
from .world import FLEET_RG, SHADOW_RG, SUBSCRIPTION, FleetWorld

SIM_EPOCH = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
"""Minute 0 of every simulated run: the trigger. A Monday at midnight UTC, so the diurnal cycle starts low."""


def to_minute(t: datetime) -> float:
    return (t - SIM_EPOCH) / timedelta(minutes=1)


def to_datetime(minute: float) -> datetime:
    return SIM_EPOCH + timedelta(minutes=minute)


class SimFleet(Fleet):
    def __init__(self, world: FleetWorld) -> None:
        self.world = world

    def inventory(self, scale_set_ids: Sequence[str]) -> list[VmInfo]:
        out: list[VmInfo] = []
        for sid in scale_set_ids:
            out.extend(self.world.inventory(_name(sid, self.world)))
        return out

    def apply_change(self, vm_ids: Sequence[str], change: ChangeSpec, *, timeout_minutes: float) -> list[ApplyResult]:
        """Looks before acting: a VM already on the change answers with its apply's result, not a Conflict."""
        w = self.world
        done = {v: w.apply_results[w.index_of(v)] for v in vm_ids if w.index_of(v) in w.apply_results}
        todo = [v for v in vm_ids if v not in done]
        fresh = {a.vm_id: a for a in w.apply(w.indices(todo), change, timeout_minutes)} if todo else {}
        return [done.get(v) or fresh[v] for v in vm_ids]

    def restore_from_snapshots(self, snapshots: Sequence[SnapshotInfo]) -> list[RestoreResult]:
        """Looks before acting: a VM whose OS disk already comes from that snapshot is restored already."""
        w = self.world
        already = {s.vm_id for s in snapshots if w.restored_from.get(w.index_of(s.vm_id)) == s.snapshot_id}
        todo = [s for s in snapshots if s.vm_id not in already]
        done = w.restore(w.indices([s.vm_id for s in todo]), [s.snapshot_id for s in todo]) if todo else []
        fresh = {w.ids[i]: RestoreResult(w.ids[i], ok, attempts, msg) for i, ok, attempts, msg in done}
        return [fresh.get(s.vm_id) or RestoreResult(s.vm_id, True, 0, f"already restored from "
                                                    f"{s.snapshot_id.rsplit('/', 1)[-1]}") for s in snapshots]

    def run_script(self, vm_ids: Sequence[str], script: str) -> dict[str, bool]:
        res = self.world.run_script(self.world.indices(list(vm_ids)))
        return {self.world.ids[i]: ok for i, ok in res}

    def capacity(self, scale_set_id: str) -> int:
        return self.world.scale_sets[_name(scale_set_id, self.world)].capacity

    def set_capacity(self, scale_set_id: str, capacity: int) -> int:
        return self.world.set_capacity(_name(scale_set_id, self.world), capacity)

    def max_capacity(self, scale_set_id: str) -> int:
        return self.world.scale_sets[_name(scale_set_id, self.world)].max_capacity

    def size(self, scale_set_id: str) -> ScaleSetSize:
        st = self.world.scale_sets[_name(scale_set_id, self.world)]
        return ScaleSetSize(st.capacity, st.max_capacity)

    def guest_extensions(self, scale_set_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        return {sid: frozenset(self.world.scale_sets[_name(sid, self.world)].extensions) for sid in scale_set_ids}

    def tags(self, scale_set_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Tags of the simulated scale sets (from the scenario's ``tags``); unknown sets are left out."""
        out: dict[str, dict[str, str]] = {}
        for sid in scale_set_ids:
            try:
                out[sid] = dict(self.world.scale_sets[_name(sid, self.world)].tags)
            except NotFound:
                continue
        return out


class SimShadowPool(ShadowPool):
    def __init__(self, world: FleetWorld) -> None:
        self.world = world

    def create(self, plans: Sequence[ShadowPlan], *, rollout_id: str, spot_fallback: str,
               max_regular: int | None = None) -> list[ShadowInfo]:
        clock = self.world.clock
        start = finish = clock.now
        out: list[ShadowInfo] = []
        regular_left = max_regular
        for plan in plans:
            clock.now = start  # the creations run in parallel
            fallback = spot_fallback
            if fallback == "regular" and regular_left is not None and regular_left <= 0:
                fallback = "skip"
            rid = shadow_resource_id(shadow_name(_tag(rollout_id), plan))
            existing = self.world.existing_shadow(rid)  # look before acting: the name is the rollout's + VM's
            if existing is not None:
                out.append(existing)
                continue
            try:
                made = self.world.create_shadow(self.world.index_of(plan.source_vm_id), plan.sku, plan.zone,
                                                fallback, _tag(rollout_id), plan.ordinal, rid.rsplit("/", 1)[-1])
                if not made.spot and regular_left is not None:
                    regular_left -= 1
                out.append(made)
            except AzureOperationError as exc:
                out.append(ShadowInfo("", plan.source_vm_id, plan.stratum_key, plan.sku, plan.zone, False,
                                      ShadowState.FAILED, str(exc)))
            finish = max(finish, clock.now)
        clock.now = finish
        return out

    def status(self, shadow_ids: Sequence[str]) -> dict[str, ShadowState]:
        return {s: self.world.shadow_state(self.world.index_of(s)) for s in shadow_ids}

    def teardown(self, shadow_ids: Sequence[str]) -> int:
        return self.world.delete_shadows(self.world.indices([s for s in shadow_ids if s]))

    def tagged(self) -> dict[str, str]:
        return self.world.live_shadows()


class SimShadowLoad(ShadowLoad):
    def __init__(self, world: FleetWorld) -> None:
        self.world = world

    def drive(self, targets: Mapping[str, float]) -> None:
        ids = list(targets)
        self.world.drive(self.world.indices(ids), np.array([targets[i] for i in ids], dtype=float))


class SimDiskSnapshots(DiskSnapshots):
    def __init__(self, world: FleetWorld) -> None:
        self.world = world

    def snapshot(self, vm_ids: Sequence[str], *, tag: str) -> list[SnapshotInfo]:
        return self.world.snapshot(self.world.indices(list(vm_ids)), _tag(tag))

    def delete_tagged(self, tag: str, resource_groups: Sequence[str]) -> int:
        return self.world.delete_snapshots(_tag(tag), resource_groups)


class SimTelemetry(Telemetry):
    """Telemetry as Azure Monitor would return it: nothing from the future, gaps as NaN."""

    def __init__(self, world: FleetWorld) -> None:
        self.world = world

    def signals(self, vm_ids: Sequence[str], start: datetime, end: datetime) -> SignalFrame:
        a = math.floor(to_minute(start))
        b = max(a, math.floor(to_minute(end)))
        idx = self.world.indices(list(vm_ids))
        sig = self.world.signals(idx, a, b)
        visible = math.floor(self.world.clock.now)  # the minute in progress is not reported yet
        if b > visible:
            cut = max(0, visible - a)
            for v in sig.values():
                v[:, cut:] = np.nan
        return SignalFrame(list(vm_ids), to_datetime(a), sig)


def _name(resource_id: str, world: FleetWorld) -> str:
    """The simulated scale set a resource id names: its subscription and resource group must be the fleet's, and
    names compare case-insensitively, as ARM's do; anything else is not found, as in Azure."""
    try:
        rid = parse_scale_set_id(resource_id)
    except ValueError as exc:
        raise NotFound(f"{resource_id!r}: {exc}", resource=str(resource_id)[:200], status=404) from exc
    if rid.subscription.casefold() != SUBSCRIPTION.casefold() or rid.resource_group.casefold() != FLEET_RG.casefold():
        raise NotFound(f"scale set {rid.name} not found in subscription {rid.subscription}, resource group "
                       f"{rid.resource_group} (the simulated fleet is in {SUBSCRIPTION}/{FLEET_RG})",
                       resource=str(rid), status=404)
    by_key = {n.casefold(): n for n in world.scale_sets}
    if rid.name.casefold() not in by_key:
        raise NotFound(f"scale set {rid.name} not found", resource=str(rid), status=404)
    return by_key[rid.name.casefold()]


def _tag(rollout_id: str) -> str:
    return rollout_label(rollout_id)


def shadow_resource_id(name: str) -> str:
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{SHADOW_RG}/providers/Microsoft.Compute/"
            f"virtualMachines/{name}")
