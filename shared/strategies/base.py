"""What every peer strategy shares: the simulator's ports, a virtual-time scheduler, and honest bookkeeping.

A peer is a plain Python loop over the same ports the project's orchestrations use (``SimFleet``,
``SimTelemetry``, ``SimDiskSnapshots``): it sees operations and telemetry, never the truth. It records its
decisions and its own belief of each touched VM's configuration, and ends with ``world.outcome`` so that
every strategy is accounted by the same code.

Several scale sets roll in parallel in some peers (Azure rolls each scale set on its own). Each is a
generator that yields the minute at which it wants to resume; :meth:`PeerRun.run` resumes them in time
order, setting the world's clock first, like the local Durable runner does for activities.
"""

from __future__ import annotations

import heapq
import math
import warnings
from collections.abc import Callable, Generator, Iterable, Sequence
from contextvars import ContextVar
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..adapters.simulator.adapters import SimDiskSnapshots, SimFleet, SimTelemetry, to_datetime
from ..adapters.simulator.scenario import Scenario
from ..adapters.simulator.world import FleetWorld, vmss_resource_id
from ..domain.errors import AzureOperationError
from ..domain.health import Baseline, failing_vms
from ..domain.model import ApplyResult, ApplyStatus, ChangeSpec, Config, SignalFrame, SnapshotInfo, VmInfo
from ..domain.policy import DEFAULT_POLICY
from ..domain.sampling import stable_rank

Process = Generator[float, None, None]
"""A strategy's thread of control: yields the minute (virtual time) at which it resumes."""

APPLY_TIMEOUT_MINUTES = 15.0
"""The apply timeout every peer gets: the project's own default (``RolloutPolicy.apply_timeout_minutes``).
Azure's own timeouts are longer (an extension is given 90 minutes); the shortest sane one shows each peer at
its best, as the contract asks (docs: scenarios contract §3)."""
OPERATION_ATTEMPTS = 3
"""Calls of one operation on one VM before a peer gives up on it (on top of the SDK's own 10 attempts)."""
RETRY_WAIT_MINUTES = 0.5
WATCH_SUFFIX = "+watch"
WATCH_MINUTES = float(DEFAULT_POLICY.production_watch_minutes)
WATCH_INTERVAL_MINUTES = float(DEFAULT_POLICY.watch_interval_minutes)
BASELINE_MINUTES = 15.0
WATCH_BLOCK_MINUTES = 360.0
MIN_PEERS = 5
_WATCHED: ContextVar[bool] = ContextVar("peer_watched", default=False)
"""Set by :func:`watched` while a ``<peer>+watch`` run builds its :class:`PeerRun`."""


def watched(run: Callable[[Scenario, int | None], dict[str, Any]]) -> Callable[[Scenario, int], dict[str, Any]]:
    """``<peer>+watch``: the peer as it is, then the project's 24-hour production watch after its last step.

    Every VM is snapshotted before its change (so that the watch can restore it), and after the peer's last step
    the VMs it believes changed are checked every ``watch_interval_minutes`` for ``production_watch_minutes``
    with the project's own health rules (:func:`shared.domain.health.failing_vms`); failing ones are restored.
    This is the watch ``shadow-predictive`` has, so the benchmark can show what the shadows add on their own.
    """
    def run_watched(scenario: Scenario, seed: int) -> dict[str, Any]:
        token = _WATCHED.set(True)
        try:
            return run(scenario, seed)
        finally:
            _WATCHED.reset(token)

    return run_watched


class PeerRun:
    """One run of one peer on one scenario and seed: the world, its ports, and what the peer believes."""

    def __init__(self, scenario: Scenario, seed: int | None, strategy: str) -> None:
        self.scenario = scenario
        self.strategy = strategy
        self.world = FleetWorld(scenario, seed=seed)
        self.fleet = SimFleet(self.world)
        self.telemetry = SimTelemetry(self.world)
        self.disks = SimDiskSnapshots(self.world)
        c = scenario.change
        self.change = ChangeSpec(c.id, c.kind, dict(c.payload))
        self.targets = [vmss_resource_id(s.name) for s in scenario.fleet.scale_sets]
        self.vms: list[VmInfo] = self.fleet.inventory(self.targets)
        self.believed: dict[str, str] = {}
        self.snapshots: dict[str, SnapshotInfo] = {}
        self.decisions: list[dict[str, Any]] = []
        self.halted = False
        self.salt = f"{strategy}:{c.id}:{self.world.seed}"
        self.watch = _WATCHED.get()
        if self.watch:
            self.strategy = strategy + WATCH_SUFFIX

    # ------------------------------------------------------------------ time
    @property
    def now(self) -> float:
        return self.world.clock.now

    def run(self, processes: Iterable[Process]) -> None:
        """Run processes concurrently on the virtual clock until all have finished."""
        heap: list[tuple[float, int, Process]] = [(self.now, i, p) for i, p in enumerate(processes)]
        heapq.heapify(heap)
        end = self.now
        while heap:
            t, i, proc = heapq.heappop(heap)
            self.world.clock.now = t
            try:
                resume = next(proc)
            except StopIteration:
                end = max(end, self.now)
                continue
            heapq.heappush(heap, (max(float(resume), self.now), i, proc))
        self.world.clock.now = end

    # ------------------------------------------------------------------ bookkeeping
    def decide(self, kind: str, reason: str) -> None:
        self.decisions.append({"minute": round(self.now, 1), "kind": kind, "reason": reason})

    def by_scale_set(self) -> dict[str, list[VmInfo]]:
        out: dict[str, list[VmInfo]] = {}
        for vm in self.vms:
            out.setdefault(vm.scale_set, []).append(vm)
        return out

    def shuffled(self, vm_ids: Sequence[str]) -> list[str]:
        """A stable pseudo-random order (the same for every process and run with this seed)."""
        return sorted(vm_ids, key=lambda v: stable_rank(self.salt, v))

    def outcome(self) -> dict[str, Any]:
        if self.watch:
            self.watch_production()
        decisions = sorted(self.decisions, key=lambda d: d["minute"])
        return self.world.outcome(strategy=self.strategy, believed=dict(self.believed), halted=self.halted,
                                  finished_at=self.now, decisions=decisions)

    def watch_production(self) -> None:
        """The project's production watch, from the peer's last step (see :func:`watched`).

        Telemetry is fetched in blocks of ``WATCH_BLOCK_MINUTES`` and each check reads only the minutes before its
        own time, exactly what a query at that time returns; after a restore the next block is fetched anew.
        """
        policy = DEFAULT_POLICY
        window = int(max(policy.health_window_minutes, policy.flap_window_minutes, policy.error_window_minutes))
        ids = [vm.vm_id for vm in self.vms]
        before = self.signals(ids, BASELINE_MINUTES, end=0.0)
        errors, cpu = row_means(before.signals["error_count"]), row_means(before.signals["cpu_pct"])
        baselines = {v: Baseline(None if np.isnan(e) else float(e), None if np.isnan(c) else float(c))
                     for v, e, c in zip(ids, errors, cpu, strict=True)}
        start, restored_total = self.now, 0
        end = start + WATCH_MINUTES
        t = start
        while t < end:
            block_start = t
            block_end = min(end, t + WATCH_BLOCK_MINUTES)
            self.world.clock.now = block_end
            frame = self.telemetry.signals(ids, to_datetime(math.floor(block_start) - window),
                                           to_datetime(math.floor(block_end)))
            origin = math.floor(block_start) - window
            restored_now = False
            while t < block_end and not restored_now:
                t = min(t + WATCH_INTERVAL_MINUTES, block_end)
                changed = sorted(v for v, c in self.believed.items() if c == Config.NEW.value)
                if not changed:
                    continue
                hi = math.floor(t) - origin
                view = SignalFrame(ids, frame.start, {k: a[:, hi - window:hi] for k, a in frame.signals.items()})
                untouched = [v for v in ids if self.believed.get(v) != Config.NEW.value]
                peer_rate = None
                if len(untouched) >= MIN_PEERS:
                    rates = row_means(view.rows(untouched).signals["error_count"])
                    rates = rates[~np.isnan(rates)]
                    peer_rate = float(np.median(rates)) if rates.size >= MIN_PEERS else None
                failing = failing_vms(view.rows(changed), baselines, [], policy, peer_rate)
                if failing:
                    self.world.clock.now = t
                    restored_total += len(self.restore(sorted(failing)))
                    t = max(t, self.now)
                    restored_now = True
        self.world.clock.now = max(self.now, end)
        self.decide("watch", f"production watched for {WATCH_MINUTES / 60:g} h after the last step with the "
                             f"project's health rules: {restored_total} VMs restored")

    # ------------------------------------------------------------------ operations (in parallel per VM)
    def _each(self, vm_ids: Sequence[str], op: str, call: Any) -> dict[str, Any]:
        """Call ``call([vm])`` for each VM from the same start time (ARM runs them in parallel), retrying an
        operation that Azure refused; the clock ends at the slowest. Refused VMs are missing from the result."""
        start = self.now
        finish = start
        out: dict[str, Any] = {}
        refused: list[str] = []
        for vm in vm_ids:
            self.world.clock.now = start
            for attempt in range(OPERATION_ATTEMPTS):
                try:
                    out[vm] = call([vm])
                    break
                except AzureOperationError:
                    if attempt == OPERATION_ATTEMPTS - 1:
                        refused.append(vm)
                    self.world.clock.now += RETRY_WAIT_MINUTES
            finish = max(finish, self.now)
        self.world.clock.now = finish
        if refused:
            self.decide(f"{op}_refused", f"{len(refused)} VMs: {op} refused by Azure after {OPERATION_ATTEMPTS} "
                                         f"calls, e.g. {refused[0].rsplit('/', 1)[-1]}")
        return out

    def apply(self, vm_ids: Sequence[str], *, wait: bool = True) -> dict[str, ApplyResult]:
        """Apply the change; every VM it was attempted on is believed to run the new configuration.

        ``wait=False`` hands the change out and goes on at once (the clock returns to when it was handed out), as
        a configuration service does: the targets fetch it, the deployment does not wait for them.
        """
        if self.watch:  # the watch restores from snapshots: take them first, as shadow-predictive does
            missing = set(self.snapshot(vm_ids))
            vm_ids = [v for v in vm_ids if v not in missing]
        start = self.now
        results = self._each(vm_ids, "apply", lambda v: self.fleet.apply_change(
            v, self.change, timeout_minutes=APPLY_TIMEOUT_MINUTES)[0])
        for vm in results:
            self.believed[vm] = Config.NEW.value
        if not wait:
            self.world.clock.now = start
        return results

    def snapshot(self, vm_ids: Sequence[str]) -> list[str]:
        """Pre-change snapshots; returns the VMs left without one."""
        todo = [v for v in vm_ids if v not in self.snapshots]
        for _ in range(OPERATION_ATTEMPTS):
            got = self._each(todo, "snapshot", lambda v: self.disks.snapshot(v, tag=f"pre-{self.change.change_id}"))
            for vm, snaps in got.items():
                if snaps:
                    self.snapshots[vm] = snaps[0]
            todo = [v for v in todo if v not in self.snapshots]
            if not todo:
                break
        return todo

    def restore(self, vm_ids: Sequence[str]) -> list[str]:
        """Restore VMs from their pre-change snapshots; returns those restored (believed on the old config)."""
        have = [v for v in vm_ids if v in self.snapshots and self.believed.get(v) == Config.NEW.value]
        missing = [v for v in vm_ids if v not in self.snapshots]
        if missing:
            self.decide("no_snapshot", f"{len(missing)} VMs cannot be rolled back: no pre-change snapshot")
        done = self._each(have, "restore", lambda v: self.fleet.restore_from_snapshots([self.snapshots[v[0]]])[0])
        restored = [v for v, r in done.items() if r.ok]
        for vm in restored:
            self.believed[vm] = Config.OLD.value
        return restored

    # ------------------------------------------------------------------ telemetry
    def signals(self, vm_ids: Sequence[str], minutes: float, end: float | None = None) -> SignalFrame:
        """The last ``minutes`` of telemetry before ``end`` (default now), as Azure Monitor returns it.

        Minutes before the trigger (negative) are history, and production VMs have it."""
        b = self.now if end is None else end
        return self.telemetry.signals(list(vm_ids), to_datetime(b - minutes), to_datetime(b))


def failed_applies(results: dict[str, ApplyResult]) -> list[str]:
    return [v for v, r in results.items() if r.status is not ApplyStatus.OK]


def latest_probe_failed(frame: SignalFrame) -> NDArray[np.bool_]:
    """Per VM: did its most recent reported health probe fail? (A VM that reported nothing is not failing.)"""
    health = frame.signals["health_ok"]
    if health.size == 0:
        return np.zeros(len(frame.vm_ids), dtype=bool)
    seen = ~np.isnan(health)
    last = health.shape[1] - 1 - np.argmax(seen[:, ::-1], axis=1)
    value = health[np.arange(health.shape[0]), last]
    failed: NDArray[np.bool_] = seen.any(axis=1) & (value == 0.0)
    return failed


def probe_failures(frame: SignalFrame) -> NDArray[np.int64]:
    """Per VM: how many probes failed in the frame (gaps are not failures)."""
    return np.asarray(np.sum(frame.signals["health_ok"] == 0.0, axis=1), dtype=np.int64)


def row_means(a: NDArray[np.float64]) -> NDArray[np.float64]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmean(a, axis=1), dtype=np.float64)


def column_means(a: NDArray[np.float64]) -> NDArray[np.float64]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmean(a, axis=0), dtype=np.float64)


def percent(part: int, whole: int) -> str:
    return f"{part}/{whole} = {100.0 * part / whole:.1f}%" if whole else f"{part}/0"


def ceil_share(share: float, n: int) -> int:
    """``share`` of ``n`` rounded up, at least 1 (Azure's and AppConfig's batch sizes never round to zero)."""
    return max(1, math.ceil(share * n - 1e-9))

