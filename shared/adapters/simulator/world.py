"""The simulated fleet: production VMs, Spot shadows, a virtual clock, the scenario's ground truth.

Time is in minutes since the trigger (minute 0). Operations take simulated time: each call starts at
``clock.now`` and moves ``clock.now`` to when it finished (for a batch, its slowest item), while the world
records the exact time of every state change. Telemetry is generated on demand for any window from
counter-based draws, so it is the same whoever asks and in whatever order.

Nothing a strategy receives comes from the ground truth: adapters expose operations and telemetry only.
The outcome accounting at the end (:meth:`FleetWorld.outcome`) is the only reader of the truth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...domain.errors import CapacityUnavailable, Conflict, NotFound, Throttled, TransientError
from ...domain.model import ApplyResult, ApplyStatus, ChangeSpec, ShadowInfo, ShadowState, SnapshotInfo, VmInfo
from ...domain.skus import family_alternatives
from ..azure.limits import ArmKind, Budget, Charge
from .prices import hourly_price, sku_info
from .rng import Stream, normal, poisson, text_key, uniform
from .scenario import Mode, Scenario

SUBSCRIPTION = "00000000-0000-4000-8000-00000000c0de"
FLEET_RG = "rg-fleet"
SHADOW_RG = "rg-shadow-pool"
SHADOW_KEY_BASE = 100_000_000

MODES: tuple[Mode, ...] = tuple(Mode)
MODE_INDEX = {m: i for i, m in enumerate(MODES)}

# Latencies in minutes: base + spread * u, u uniform per operation and resource. Figures and sources are
# in docs/simulator.md.
LATENCY = {
    "snapshot": (0.4, 1.0),
    "disk_from_snapshot": (0.5, 0.5),
    "spot_vm_create": (1.5, 1.5),
    "apply:run-command": (0.5, 1.5),
    "apply:extension": (1.5, 2.0),
    "apply:model-update": (3.0, 2.0),
    "restore:Flexible": (2.5, 1.5),
    "restore:Uniform": (4.0, 2.0),
    "run_script": (0.3, 0.4),
    "scale_out": (3.0, 2.0),
    "delete": (0.3, 0.3),
}
MAX_ARM_ATTEMPTS = 10
SNAPSHOT_ATTEMPTS = 3
SPIKE_RATE = 0.003
SPIKE_MAX_MINUTES = 5
SPIKE_ERROR_FACTOR = 3.0
METRIC_GAP_RATE = 0.01
LOG_GAP_RATE = 0.005
EVICTION_NOTICE_MINUTES = 0.5
CLOCK_RESOLUTION = 1e-6
"""Minutes; orchestration time is kept in datetimes (microseconds), so comparisons allow this much."""
PRINCIPAL = "shadow-rollout-app"
"""The one managed identity the Function App calls ARM as (the budgets are per principal)."""
WRITE = Charge(ArmKind.WRITES)
RETRY_AFTER_SECONDS = (5.0, 25.0)
BACKOFF_SECONDS = 0.8


@dataclass
class SimClock:
    """The virtual clock. The local runner sets ``now`` before each activity and reads it after."""

    now: float = 0.0

    def advance_to(self, t: float) -> None:
        self.now = max(self.now, t)


def vmss_resource_id(name: str) -> str:
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{FLEET_RG}/providers/"
            f"Microsoft.Compute/virtualMachineScaleSets/{name}")


@dataclass
class ShadowDraft:
    """A shadow on its way: its world key and name, and when its last finished step ended."""

    source: int
    key: int
    name: str
    rid: str
    started: float
    ready: float
    tag: str = ""


@dataclass
class _ScaleSetState:
    name: str
    orchestration: str
    original: int
    capacity: int
    max_capacity: int
    """The most instances ARM lets it hold (shared/domain/scale_set_limits.py)."""
    single_placement_group: bool
    # one entry per extra instance: [up_at, down_at]
    extra: list[list[float]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    extensions: list[str] = field(default_factory=list)


class _IdIndex(dict[str, int]):
    """Resource id -> row. ARM resource ids are case-insensitive ("Resource names are case-insensitive unless noted",
    learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules), so the world's are too; it
    keeps the lower-cased id and hands out its own spelling through ``FleetWorld.ids``."""

    def __setitem__(self, key: str, value: int) -> None:
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key: str) -> int:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: int | None = None) -> int | None:  # type: ignore[override]
        return super().get(key.lower(), default)


class FleetWorld:
    """Everything the simulator knows. Adapters call its operations; only ``outcome`` reads the truth."""

    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.clock = SimClock()
        self.region = scenario.fleet.region
        self.set_regions = {s.name: s.region or scenario.fleet.region for s in scenario.fleet.scale_sets}
        """Scale set -> its region (the fleet's unless the scenario says otherwise)."""
        self.effects = list(scenario.change.truth.effects)
        self.faults = scenario.faults
        self._ss_names = [s.name for s in scenario.fleet.scale_sets]
        self._ss_index = {n: i for i, n in enumerate(self._ss_names)}
        self.scale_sets = {s.name: _ScaleSetState(s.name, s.orchestration, s.capacity, s.capacity, s.max_capacity,
                                                  s.single_placement_group, tags=dict(s.tags),
                                                  extensions=list(s.extensions))
                           for s in scenario.fleet.scale_sets}
        self._skus: list[str] = []
        self._images: list[str] = []
        self._zones: list[str] = []
        self.ids: list[str] = []
        self.names: list[str] = []
        self._by_id: dict[str, int] = _IdIndex()
        self.snapshots: dict[int, list[tuple[float, str]]] = {}
        self.shadow_rows: list[int] = []
        self.shadow_spot: dict[int, bool] = {}
        self.shadow_created_at: dict[int, float] = {}
        self.shadow_source: dict[int, int] = {}
        self.shadow_tag: dict[int, str] = {}
        self.last_production_action = 0.0
        self._deleted: set[int] = set()
        self._cleaned: set[int] = set()
        self._attempts: dict[tuple[str, str], int] = {}
        self._prepaid: dict[tuple[str, str], list[float]] = {}
        self.budget = Budget()
        """ARM's and Compute's request budgets (shared.adapters.azure.limits), in seconds of the world clock."""
        self.throttled_minutes = 0.0
        """Minutes logical operations waited for their budget, summed (the cost of throttling)."""
        self.arm_writes = 0
        """ARM write requests the logical operations spent (for the budget-derived floor)."""
        self.apply_results: dict[int, ApplyResult] = {}
        """Row -> what its (only) apply returned: what a look before a second apply finds."""
        self.restored_from: dict[int, str] = {}
        """Row -> the snapshot its OS disk was restored from."""
        self.restore_first_failure: dict[int, float] = {}
        """Row -> when its restore's failed first attempt ended (the stand-in answers that attempt Failed)."""
        self.operations: dict[str, Any] = {}
        """Long-running operations by key, with when each ends (shared.adapters.simulator.operations)."""
        self._shadow_names = 0
        self._shadow_bases: dict[str, int] = {}
        self.snapshots_taken = 0
        self._build_production()

    # ------------------------------------------------------------------ building the fleet
    def _code(self, table: list[str], value: str) -> int:
        if value not in table:
            table.append(value)
        return table.index(value)

    def _build_production(self) -> None:
        seed = self.seed
        rows: dict[str, list[Any]] = {k: [] for k in ("ss", "sku", "img", "zone", "m", "amp", "noise")}
        for s in self.scenario.fleet.scale_sets:
            skus, sku_w = list(s.skus), np.array(list(s.skus.values()), dtype=float)
            imgs, img_w = list(s.images), np.array(list(s.images.values()), dtype=float)
            si = self._ss_index[s.name]
            for k in range(s.capacity):
                key = si * 10_000 + k
                sku = skus[int(np.searchsorted(np.cumsum(sku_w) / sku_w.sum(),
                                               uniform(seed, Stream.PLACEMENT, key, 1)))]
                img = imgs[int(np.searchsorted(np.cumsum(img_w) / img_w.sum(),
                                               uniform(seed, Stream.PLACEMENT, key, 2)))]
                zone = s.zones[k % len(s.zones)]
                name = f"{s.name}_{k}" if s.orchestration == "Flexible" else f"{s.name}/{k}"
                rid = (f"{vmss_resource_id(s.name)}/virtualMachines/{k}" if s.orchestration == "Uniform" else
                       f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{FLEET_RG}/providers/"
                       f"Microsoft.Compute/virtualMachines/{s.name}_{k}")
                self._by_id[rid] = len(self.ids)
                self.ids.append(rid)
                self.names.append(name)
                rows["ss"].append(si)
                rows["sku"].append(self._code(self._skus, sku))
                rows["img"].append(self._code(self._images, img))
                rows["zone"].append(self._code(self._zones, zone))
                rows["amp"].append(s.load.diurnal_amplitude)
                rows["noise"].append(s.load.noise)
                rows["m"].append(s.load.mean)
        n = len(self.ids)
        self.n_production = n
        keys = np.arange(n)
        noise = np.array(rows["noise"])
        self.t: dict[str, NDArray[Any]] = {
            "key": keys.astype(np.int64),
            "ss": np.array(rows["ss"], dtype=np.int32),
            "sku": np.array(rows["sku"], dtype=np.int32),
            "img": np.array(rows["img"], dtype=np.int32),
            "zone": np.array(rows["zone"], dtype=np.int32),
            "m": np.clip(np.array(rows["m"]) + noise * normal(seed, Stream.VM_MEAN, keys), 0.0, 1.0),
            "amp": np.array(rows["amp"]),
            "noise": noise,
            "mem_base": np.clip(60.0 + 10.0 * normal(seed, Stream.MEM_BASE, keys), 30.0, 90.0),
            "vcpus": np.array([sku_info(self._skus[c]).vcpus for c in rows["sku"]], dtype=float),
            "drive_target": np.full(n, np.nan),
            "drive_start": np.full(n, np.inf),
            "drive_stop": np.full(n, np.inf),
            "exists_from": np.full(n, -np.inf),
            "exists_to": np.full(n, np.inf),
            "apply_at": np.full(n, np.nan),
            "apply_done": np.full(n, np.nan),
            "restore_start": np.full(n, np.nan),
            "restore_done": np.full(n, np.nan),
            "t0": np.full((len(MODES), n), np.inf),
            "sev": np.zeros((len(MODES), n)),
            "down_at": np.full(n, np.inf),
            "oom_at": np.full(n, np.inf),
            "sat_at": np.full(n, np.inf),
            "imp_at": np.full(n, np.inf),
            "match": self._static_match(np.array(rows["ss"]), np.array(rows["sku"]), np.array(rows["img"]),
                                        np.array(rows["zone"])),
        }

    def _static_match(self, ss: NDArray[Any], sku: NDArray[Any], img: NDArray[Any],
                      zone: NDArray[Any]) -> NDArray[np.bool_]:
        out = np.ones((len(self.effects), len(ss)), dtype=bool)
        for e, eff in enumerate(self.effects):
            w = eff.when
            if w.scale_sets is not None:
                out[e] &= np.isin(ss, [self._ss_index[s] for s in w.scale_sets])
            if w.skus is not None:
                out[e] &= np.isin(sku, [self._skus.index(s) for s in w.skus if s in self._skus])
            if w.images is not None:
                out[e] &= np.isin(img, [self._images.index(s) for s in w.images if s in self._images])
            if w.zones is not None:
                out[e] &= np.isin(zone, [self._zones.index(s) for s in w.zones if s in self._zones])
        return out

    def _append_rows(self, new: dict[str, NDArray[Any]]) -> None:
        for k, v in new.items():
            axis = 1 if self.t[k].ndim == 2 else 0
            self.t[k] = np.concatenate([self.t[k], v], axis=axis)

    # ------------------------------------------------------------------ lookups
    def index_of(self, resource_id: str) -> int:
        try:
            return self._by_id[resource_id]
        except KeyError as exc:
            raise NotFound(f"resource {resource_id} not found", resource=resource_id, status=404) from exc

    def indices(self, resource_ids: list[str]) -> NDArray[np.int64]:
        return np.array([self.index_of(r) for r in resource_ids], dtype=np.int64)

    def vm_info(self, i: int) -> VmInfo:
        ss = self._ss_names[int(self.t["ss"][i])]
        return VmInfo(self.ids[i], ss, self._skus[int(self.t["sku"][i])], self._images[int(self.t["img"][i])],
                      self._zones[int(self.t["zone"][i])], self.scale_sets[ss].orchestration,
                      f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{FLEET_RG}/providers/Microsoft.Compute/"
                      f"disks/{self.names[i].replace('/', '_')}_osdisk")

    def orchestration_of(self, i: int) -> str:
        """Row ``i``'s orchestration mode (its scale set's), without building its :class:`VmInfo`."""
        return self.scale_sets[self._ss_names[int(self.t["ss"][i])]].orchestration

    def region_of(self, i: int) -> str:
        """The region of row ``i``: its scale set's; a shadow's is the fleet's (the shadow pool's)."""
        if i >= self.n_production:
            return self.region
        return self.set_regions[self._ss_names[int(self.t["ss"][i])]]

    def inventory(self, scale_set: str) -> list[VmInfo]:
        if scale_set not in self._ss_index:
            raise NotFound(f"scale set {scale_set} not found", resource=scale_set, status=404)
        si = self._ss_index[scale_set]
        rows = np.nonzero(self.t["ss"][: self.n_production] == si)[0]
        return [self.vm_info(int(i)) for i in rows]

    # ------------------------------------------------------------------ faults and latency
    def _latency(self, op: str, keys: NDArray[Any], attempt: int = 0) -> NDArray[np.float64]:
        base, spread = LATENCY[op]
        return base + spread * uniform(self.seed, Stream.LATENCY, text_key(op), keys, attempt)

    def arm_attempt(self, op: str, resource: str, retry: int = 0) -> tuple[str, float]:
        """One attempt at a logical ARM operation: ``("ok", 0)``, ``("throttled", retry_after)`` or
        ``("transient", back_off)``, in minutes. The Azure-shaped stand-in answers each attempt on the wire.

        The attempt count (kept across calls) keys the draw; ``retry``, the attempt's index within this
        operation, sets the exponential back-off, which restarts with each new operation.
        """
        f = self.faults
        attempt = self._next_attempt(f"arm:{op}", resource)
        u = float(uniform(self.seed, Stream.FAULT, text_key(op), text_key(resource), attempt, 0))
        if u < f.arm_throttle_rate:
            lo, hi = RETRY_AFTER_SECONDS
            return "throttled", (lo + (hi - lo) * float(uniform(self.seed, Stream.FAULT, text_key(op),
                                                                text_key(resource), attempt, 1))) / 60.0
        if u < f.arm_throttle_rate + f.arm_transient_error_rate:
            return "transient", BACKOFF_SECONDS * 2**retry / 60.0
        return "ok", 0.0

    @property
    def arm_faults(self) -> bool:
        return self.faults.arm_throttle_rate > 0 or self.faults.arm_transient_error_rate > 0

    def prepay_arm_delay(self, op: str, resource: str, minutes: float) -> None:
        """The stand-in already answered this operation's failed attempts on the wire: the next
        :meth:`arm_delay` of (op, resource) is this delay instead of fresh draws."""
        self._prepaid.setdefault((op, resource), []).append(minutes)

    def discard_prepaid(self, op: str, resource: str) -> None:
        """Forget a prepaid delay that no operation consumed (the operation was refused first)."""
        self._prepaid.pop((op, resource), None)

    def arm_delay(self, op: str, resource: str, charges: list[Charge] | None = None) -> float:
        """Minutes lost to 429s (Retry-After) and transient 5xx before the operation is accepted.

        Draws are keyed by (seed, logical operation, resource, attempt), as in the Azure-shaped stand-in.
        """
        delay = self._fault_delay(op, resource)
        return delay + self._budget_wait(_charges(op, resource) if charges is None else charges, delay)

    def _budget_wait(self, charges: list[Charge], delay: float) -> float:
        """Minutes until the operation's requests have their tokens (a paced client waits; Azure would 429)."""
        if not charges:
            return 0.0
        t = (self.clock.now + delay) * 60.0
        self.arm_writes += sum(1 for c in charges if c.kind is ArmKind.WRITES)
        wait = (self.budget.reserve(charges, PRINCIPAL, t) - t) / 60.0
        self.throttled_minutes += wait
        return wait

    def _fault_delay(self, op: str, resource: str) -> float:
        prepaid = self._prepaid.get((op, resource))
        if prepaid:
            return prepaid.pop(0)
        if not self.arm_faults:
            return 0.0
        delay = 0.0
        kind = "ok"
        for retry in range(MAX_ARM_ATTEMPTS):
            kind, lost = self.arm_attempt(op, resource, retry)
            if kind == "ok":
                return delay
            delay += lost
        err = Throttled if kind == "throttled" else TransientError
        raise err(f"{op} on {resource}: still failing after {MAX_ARM_ATTEMPTS} attempts", operation=op,
                  resource=resource, status=429 if kind == "throttled" else 503)

    def attempt_counters(self) -> dict[tuple[str, str], int]:
        """The fault streams' positions: what a re-executed work item rewinds to (chaos, at-least-once)."""
        return self._attempts

    def set_attempt_counters(self, counters: dict[tuple[str, str], int]) -> None:
        self._attempts = counters

    def _next_attempt(self, op: str, resource: str) -> int:
        """Attempts are counted per (operation, resource) across calls, so a retry draws afresh."""
        attempt = self._attempts.get((op, resource), 0)
        self._attempts[(op, resource)] = attempt + 1
        return attempt

    def _fails(self, what: str, rate: float, i: int) -> bool:
        if rate <= 0:
            return False
        attempt = self._next_attempt(what, self.ids[i])
        return float(uniform(self.seed, Stream.FAULT, text_key(what), int(self.t["key"][i]), attempt, 2)) < rate

    # ------------------------------------------------------------------ load and telemetry
    def utilisation(self, idx: NDArray[np.int64], minutes: NDArray[Any]) -> NDArray[np.float64]:
        """Utilisation 0..1 of rows ``idx`` at integer ``minutes`` (shape len(idx) x len(minutes))."""
        t = np.asarray(minutes, dtype=float)[None, :]
        keys = self.t["key"][idx][:, None]
        tk = np.asarray(minutes, dtype=np.int64)[None, :]
        prod = idx < self.n_production
        out = np.empty((len(idx), t.shape[1]))
        if prod.any():
            p = idx[prod]
            out[prod] = (self.t["m"][p][:, None] + self.t["amp"][p][:, None] * np.sin(2 * np.pi * t / 1440.0)
                         + self.t["noise"][p][:, None] * normal(self.seed, Stream.LOAD, keys[prod], tk))
        if (~prod).any():
            s = idx[~prod]
            tm = t + 0.5
            driven = (tm >= self.t["drive_start"][s][:, None]) & (tm < self.t["drive_stop"][s][:, None])
            noise = normal(self.seed, Stream.SHADOW_LOAD, keys[~prod], tk)
            target = np.nan_to_num(self.t["drive_target"][s])[:, None]
            out[~prod] = np.where(driven, target + 0.02 * noise, 0.02 * np.abs(noise))
        return np.clip(out, 0.0, 1.0)

    def _cpu(self, idx: NDArray[np.int64], minutes: NDArray[Any], util: NDArray[np.float64]) -> NDArray[np.float64]:
        keys = self.t["key"][idx][:, None]
        tk = np.asarray(minutes, dtype=np.int64)[None, :]
        return 100.0 * (0.05 + 0.85 * util) + 2.0 * normal(self.seed, Stream.CPU, keys, tk)

    def signals(self, idx: NDArray[np.int64], start: int, end: int) -> dict[str, NDArray[np.float64]]:
        """Per-minute signals of rows ``idx`` for minutes [start, end); NaN where the VM gave no data."""
        minutes = np.arange(start, end)
        n, w = len(idx), len(minutes)
        if n == 0 or w == 0:
            return {k: np.zeros((n, w)) for k in ("cpu_pct", "mem_available_pct", "net_bytes", "error_count",
                                                  "health_ok")}
        T = self.t
        tm = minutes[None, :] + 0.5
        keys = T["key"][idx][:, None]
        tk = minutes[None, :].astype(np.int64)
        seed = self.seed
        util = self.utilisation(idx, minutes)
        rs = np.nan_to_num(T["restore_start"][idx], nan=np.inf)[:, None]
        rd = np.nan_to_num(T["restore_done"][idx], nan=np.inf)[:, None]
        alive = (tm >= T["exists_from"][idx][:, None]) & (tm < T["exists_to"][idx][:, None]) & ~((tm >= rs) & (tm < rd))

        def active(x: NDArray[Any]) -> NDArray[np.bool_]:
            on: NDArray[np.bool_] = (tm >= x[:, None]) & (tm < rs)
            return on

        def mode(m: Mode) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
            j = MODE_INDEX[m]
            return active(T["t0"][j][idx]), T["sev"][j][idx][:, None]

        down = active(T["down_at"][idx])
        cpu_on, cpu_sev = mode(Mode.CPU_REGRESSION)
        leak_on, leak_sev = mode(Mode.MEMORY_LEAK)
        burst_on, burst_sev = mode(Mode.ERROR_BURST)
        flap_on, flap_sev = mode(Mode.HEALTH_FLAP)
        net_on, net_sev = mode(Mode.NETWORK_DEGRADATION)
        hang_on, hang_sev = mode(Mode.APPLY_TIMEOUT)
        saturated = active(T["sat_at"][idx])

        cpu = self._cpu(idx, minutes, util) + np.where(cpu_on, 60.0 * cpu_sev, 0.0)
        cpu = np.where(down, 2.0 + np.abs(normal(seed, Stream.CPU, keys, tk + 7)), cpu)
        leak_t0 = T["t0"][MODE_INDEX[Mode.MEMORY_LEAK]][idx][:, None]
        leak = np.where(leak_on, (0.05 + 1.95 * leak_sev) * (tm - np.where(leak_on, leak_t0, 0.0)), 0.0)
        mem = T["mem_base"][idx][:, None] - 15.0 * util + normal(seed, Stream.MEM, keys, tk) - leak
        net = 6.0e7 * T["vcpus"][idx][:, None] * util * (1.0 + 0.05 * normal(seed, Stream.NET, keys, tk))
        net = np.where(net_on, net * (1.0 - 0.8 * net_sev), net)
        net = np.where(down, net * 0.01, net)
        lam = 0.5 + 2.0 * util
        lam = np.where(burst_on, lam * (1.0 + 20.0 * burst_sev), lam)
        lam = np.where(net_on, lam * (1.0 + 5.0 * net_sev), lam)
        lam = np.where(hang_on, lam * 4.0, lam)
        lam = np.where(down, lam + 30.0, lam)
        errors = poisson(uniform(seed, Stream.ERRORS, keys, tk), lam)
        p_fail = np.full((n, w), 0.0005)
        p_fail = np.where(flap_on, np.maximum(p_fail, 0.2 + 0.6 * flap_sev), p_fail)
        p_fail = np.where(hang_on, np.maximum(p_fail, 0.3 + 0.5 * hang_sev), p_fail)
        p_fail = np.where(net_on, np.maximum(p_fail, 0.1 * net_sev), p_fail)
        p_fail = np.where(saturated, np.maximum(p_fail, 0.8), p_fail)
        p_fail = np.where(down, 1.0, p_fail)
        health = (uniform(seed, Stream.HEALTH, keys, tk) >= p_fail).astype(float)
        spike = self._benign_spikes(keys, tk) & ~down
        cpu = np.where(spike, cpu + 25.0 + 15.0 * uniform(seed, Stream.SPIKE, keys, tk, 2), cpu)
        errors = np.where(spike, poisson(uniform(seed, Stream.SPIKE, keys, tk, 3), lam * SPIKE_ERROR_FACTOR), errors)
        metric_gap = uniform(seed, Stream.GAP, keys, tk, 0) < METRIC_GAP_RATE
        log_gap = uniform(seed, Stream.GAP, keys, tk, 1) < LOG_GAP_RATE
        cpu = np.where(metric_gap, np.nan, cpu)
        mem = np.where(metric_gap, np.nan, mem)
        net = np.where(metric_gap, np.nan, net)
        errors = np.where(log_gap, np.nan, errors)
        health = np.where(log_gap, np.nan, health)
        out = {
            "cpu_pct": np.clip(cpu, 0.0, 100.0),
            "mem_available_pct": np.clip(mem, 0.0, 100.0),
            "net_bytes": np.maximum(net, 0.0),
            "error_count": errors.astype(float),
            "health_ok": health,
        }
        for k, v in out.items():
            out[k] = np.where(alive, v, np.nan)
        return out

    def _benign_spikes(self, keys: NDArray[Any], tk: NDArray[Any]) -> NDArray[np.bool_]:
        """Short bursts of CPU and errors that have nothing to do with the change (cron jobs, GC, deploys).

        A spike starts at a minute with probability SPIKE_RATE and lasts 1..SPIKE_MAX_MINUTES minutes.
        """
        on = np.zeros(np.broadcast_shapes(keys.shape, tk.shape), dtype=bool)
        for d in range(SPIKE_MAX_MINUTES):
            started = uniform(self.seed, Stream.SPIKE, keys, tk - d, 0) < SPIKE_RATE
            length = 1 + np.floor(uniform(self.seed, Stream.SPIKE, keys, tk - d, 1) * SPIKE_MAX_MINUTES)
            on |= started & (length > d)
        return on

    # ------------------------------------------------------------------ the change
    def apply(self, idx: NDArray[np.int64], change: ChangeSpec, timeout_minutes: float) -> list[ApplyResult]:
        """Apply the change to rows ``idx`` in parallel, starting now."""
        now = self.clock.now
        T = self.t
        for i in idx:
            if not math.isnan(T["apply_at"][i]):
                raise Conflict(f"the change was already applied to {self.ids[i]}", operation="apply",
                               resource=self.ids[i], status=409)
            if not (T["exists_from"][i] <= now < T["exists_to"][i]):
                raise NotFound(f"{self.ids[i]} does not exist now", resource=self.ids[i], status=404)
        keys = T["key"][idx]
        start = now + np.array([self.arm_delay(f"apply:{change.kind}", self.ids[i]) for i in idx])
        done = start + self._latency(f"apply:{change.kind}", keys)
        util_now = self.utilisation(idx, np.array([int(now)]))[:, 0]
        T["apply_at"][idx] = now
        results: list[ApplyResult] = []
        for r, i in enumerate(idx):
            status, finish = ApplyStatus.OK, float(done[r])
            exit_code: int | None = 0
            for e, eff in enumerate(self.effects):
                if not T["match"][e, i]:
                    continue
                if float(uniform(self.seed, Stream.AFFECT, e, int(keys[r]))) >= eff.probability:
                    continue
                if eff.when.load_above is not None and not util_now[r] > eff.when.load_above:
                    continue
                j = MODE_INDEX[eff.mode]
                t0 = finish + eff.onset_minutes
                T["t0"][j, i] = min(T["t0"][j, i], t0)
                T["sev"][j, i] = max(T["sev"][j, i], eff.severity)
                if eff.mode is Mode.CRASH_ON_APPLY and eff.onset_minutes == 0:
                    status, exit_code = ApplyStatus.FAILED, 1
                if eff.mode is Mode.APPLY_TIMEOUT and eff.onset_minutes == 0:
                    status, exit_code = ApplyStatus.TIMEOUT, None
            if status is ApplyStatus.TIMEOUT:
                finish = now + timeout_minutes
            T["apply_done"][i] = finish
            self._derive_times(int(i))
            results.append(ApplyResult(self.ids[i], status, exit_code, round((finish - now) * 60.0, 1)))
            self.apply_results[int(i)] = results[-1]
        if len(idx):
            self.clock.advance_to(float(max(T["apply_done"][idx])))
            self._production_action(idx, float(max(T["apply_done"][idx])))
        return results

    def _derive_times(self, i: int) -> None:
        """Ground truth of one VM after apply: when its service goes down and when it is impaired."""
        T = self.t
        t0 = {m: T["t0"][MODE_INDEX[m], i] for m in MODES}
        sev = {m: T["sev"][MODE_INDEX[m], i] for m in MODES}
        down = min(t0[Mode.CRASH_ON_APPLY], t0[Mode.LATENT_CRASH])
        if math.isfinite(t0[Mode.MEMORY_LEAK]):
            level = T["mem_base"][i] - 15.0 * self._reference_load(i)
            T["oom_at"][i] = t0[Mode.MEMORY_LEAK] + max(level, 0.0) / (0.05 + 1.95 * sev[Mode.MEMORY_LEAK])
            down = min(down, T["oom_at"][i])
        if math.isfinite(t0[Mode.CPU_REGRESSION]):
            T["sat_at"][i] = self._first_saturation(i, t0[Mode.CPU_REGRESSION], 60.0 * sev[Mode.CPU_REGRESSION])
        T["down_at"][i] = down
        T["imp_at"][i] = min(down, T["sat_at"][i], t0[Mode.APPLY_TIMEOUT], t0[Mode.ERROR_BURST],
                             t0[Mode.HEALTH_FLAP], t0[Mode.NETWORK_DEGRADATION])

    def _reference_load(self, i: int) -> float:
        if i < self.n_production:
            return float(self.t["m"][i])
        return float(np.nan_to_num(self.t["drive_target"][i]))

    def _first_saturation(self, i: int, t0: float, extra: float) -> float:
        horizon = self.scenario.horizon_minutes
        idx = np.array([i], dtype=np.int64)
        start = math.floor(t0)
        for a in range(start, start + horizon + 1, 240):
            minutes = np.arange(a, min(a + 240, start + horizon + 1))
            cpu = self._cpu(idx, minutes, self.utilisation(idx, minutes))[0] + extra
            hit = np.nonzero((cpu >= 95.0) & (minutes + 0.5 >= t0))[0]
            if hit.size:
                return float(minutes[hit[0]])
        return math.inf

    def _production_action(self, idx: NDArray[np.int64], t: float) -> None:
        if np.any(idx < self.n_production):
            self.last_production_action = max(self.last_production_action, t)

    # ------------------------------------------------------------------ snapshots and restore
    def snapshot(self, idx: NDArray[np.int64], tag: str,
                 snapshot_ids: list[str] | None = None) -> list[SnapshotInfo]:
        """Pre-change snapshots; ``snapshot_ids`` names them as the caller did (default ``{tag}-{vm}``)."""
        now = self.clock.now
        out: list[SnapshotInfo] = []
        finish = now
        for pos, i in enumerate(idx):
            t = now + self.arm_delay("snapshot", self.ids[i])
            attempt = 0
            while attempt < SNAPSHOT_ATTEMPTS and self._fails("snapshot", self.faults.snapshot_failure_rate, int(i)):
                t += float(self._latency("snapshot", np.array([self.t["key"][i]]), attempt)[0])
                attempt += 1
            if attempt >= SNAPSHOT_ATTEMPTS:
                finish = max(finish, t)
                continue  # this VM has no snapshot; the caller sees it missing from the result
            t += float(self._latency("snapshot", np.array([self.t["key"][i]]), attempt)[0])
            sid = (snapshot_ids[pos] if snapshot_ids is not None else
                   f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{FLEET_RG}/providers/Microsoft.Compute/"
                   f"snapshots/{tag}-{self.names[i].replace('/', '_')}")
            self.snapshots.setdefault(int(i), []).append((t, sid))
            self.snapshots_taken += 1
            finish = max(finish, t)
            out.append(SnapshotInfo(self.ids[i], sid, self.vm_info(int(i)).os_disk_id))
        self.clock.advance_to(finish)
        return out

    def delete_snapshots(self, tag: str, resource_groups: Sequence[str]) -> int:
        """Delete the pre-change snapshots named ``{tag}-...`` in these resource groups; the number deleted."""
        groups = {g.lower() for g in resource_groups}
        deleted = 0
        for i in list(self.snapshots):
            keep = []
            for t, sid in self.snapshots[i]:
                rg = sid.split("/resourceGroups/")[1].split("/")[0].lower() if "/resourceGroups/" in sid else ""
                if rg in groups and sid.rsplit("/", 1)[-1].startswith(f"{tag}-"):
                    deleted += 1
                else:
                    keep.append((t, sid))
            if keep:
                self.snapshots[i] = keep
            else:
                del self.snapshots[i]
        return deleted

    def restore(self, idx: NDArray[np.int64], snapshot_ids: list[str]) -> list[tuple[int, bool, int, str]]:
        """Restore each VM's OS disk from its pre-change snapshot; returns (row, ok, attempts, message), in the
        order asked.

        The VMs take their budget in the order their requests reach ARM: the Azure adapters begin a batch's disk
        swap chain (Flexible VMs, in the batch's order) before its reimages (Uniform instances), both chains
        side by side (``compute.AzureFleet.restore_from_snapshots``), so when the write buckets are short the
        reimages wait behind the swaps."""
        now = self.clock.now
        T = self.t
        out: list[tuple[int, bool, int, str]] = []
        finish = now
        pairs = [(int(i), sid) for i, sid in zip(idx, snapshot_ids, strict=True)]
        orchs = [self.orchestration_of(i) for i, _ in pairs]
        order = sorted(range(len(pairs)), key=lambda k: orchs[k] == "Uniform")  # stable: each chain in batch order
        for k in order:
            (i, sid), orch = pairs[k], orchs[k]
            taken = dict((s, t) for t, s in self.snapshots.get(i, []))
            if sid not in taken:
                raise NotFound(f"snapshot {sid} of {self.ids[i]} not found", resource=sid, status=404)
            if not math.isnan(T["apply_at"][i]) and taken[sid] > T["apply_at"][i] + CLOCK_RESOLUTION:
                raise Conflict(f"snapshot {sid} was taken after the change reached {self.ids[i]}",
                               resource=sid, status=409)
            if not math.isnan(T["restore_start"][i]):
                raise Conflict(f"{self.ids[i]} was already restored", resource=self.ids[i], status=409)
            t = now + self.arm_delay("restore", self.ids[i])
            attempts = 1
            key = np.array([T["key"][i]])
            if self._fails("restore", self.faults.restore_failure_rate, i):
                t += float(self._latency(f"restore:{orch}", key, 0)[0])
                attempts = 2
                self.restore_first_failure[i] = t
            t_start = now
            t += float(self._latency(f"restore:{orch}", key, attempts)[0])
            T["restore_start"][i] = t_start
            T["restore_done"][i] = t
            self.restored_from[i] = sid
            finish = max(finish, t)
            out.append((i, True, attempts, f"OS disk restored from {sid.rsplit('/', 1)[-1]} "
                        f"({'disk swap' if orch == 'Flexible' else 'reimage + data disk from snapshot'})"))
        self.clock.advance_to(finish)
        self._production_action(np.array([o[0] for o in out], dtype=np.int64), finish)
        asked = {k: n for n, k in enumerate(order)}
        return [out[asked[k]] for k in range(len(pairs))]

    def run_script(self, idx: NDArray[np.int64]) -> list[tuple[int, bool]]:
        now = self.clock.now
        done = now + self._latency("run_script", self.t["key"][idx]) if len(idx) else np.array([now])
        self.clock.advance_to(float(done.max()))
        ok = self.t["down_at"][idx] > np.nan_to_num(self.t["restore_start"][idx], nan=np.inf)
        return [(int(i), bool(o)) for i, o in zip(idx, ok, strict=True)]

    # ------------------------------------------------------------------ capacity
    def set_capacity(self, scale_set: str, capacity: int) -> int:
        """Refuses a count outside 0..the scale set's maximum, as ARM does, and changes nothing then."""
        st = self.scale_sets[scale_set]
        if not 0 <= capacity <= st.max_capacity:
            raise CapacityUnavailable(f"set_capacity {scale_set}: 400 InvalidParameter sku.capacity must be "
                                      f"0..{st.max_capacity} (got {capacity})", operation="set_capacity",
                                      resource=scale_set, status=400)
        now = self.clock.now + self.arm_delay("vmss_update", scale_set)
        delta = capacity - st.capacity
        if delta > 0:
            ups = now + self._latency("scale_out", np.arange(len(st.extra), len(st.extra) + delta) + 7919)
            st.extra.extend([[float(u), math.inf] for u in ups])
            ready = float(ups.max())
        else:
            for rec in [r for r in st.extra if math.isinf(r[1])][::-1][: -delta]:
                rec[1] = now
            ready = now
        st.capacity = capacity
        self.last_production_action = max(self.last_production_action, ready)
        self.clock.advance_to(now)  # ARM accepted the update; instances come up on their own
        return capacity

    # ------------------------------------------------------------------ shadows
    def create_shadow(self, source: int, sku: str, zone: str, spot_fallback: str, tag: str,
                      ordinal: int | None = None, name: str | None = None) -> ShadowInfo:
        """Snapshot the source's disk, make a disk, start a Spot VM from it (or a regular one, per policy)."""
        draft = self.begin_shadow(source, tag, ordinal, name)
        self.shadow_disk(draft)
        return self.launch_shadow(draft, sku, zone, spot_fallback)

    # The three steps of a shadow, each timed from the previous one's end (``draft.ready``): the simulator's
    # adapter runs them back to back; the Azure-shaped stand-in runs each when its ARM request arrives.
    def begin_shadow(self, source: int, tag: str, ordinal: int | None = None,
                     name: str | None = None) -> ShadowDraft:
        """Step 1: the incremental snapshot of the source's OS disk.

        The shadow is numbered by ``ordinal`` (its plan's place in the pool) when given, else in call order:
        parallel chunks then get the same shadows (names and draws) whichever runs first. ``name`` (a rollout's
        deterministic shadow name, so a second run finds it) replaces the numbered name; the draws stay numbered.
        """
        now = self.clock.now
        src = self.vm_info(source)
        if ordinal is None:
            number = self._shadow_names + 1
        else:  # numbered from where the pool of this tag (rollout) started, so rollouts never share a number
            number = self._shadow_bases.setdefault(tag, self._shadow_names) + ordinal
        self._shadow_names = max(self._shadow_names, number)
        key = SHADOW_KEY_BASE + number
        name = name or f"shadow-{tag}-{number:04d}"
        rid = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{SHADOW_RG}/providers/"
               f"Microsoft.Compute/virtualMachines/{name}")
        k = np.array([key])
        # the shadow's three writes (snapshot, disk, VM) are spent when it starts, on either backend
        t = now + self.arm_delay("snapshot", src.vm_id, [WRITE, WRITE, Charge(ArmKind.WRITES, "PutVM", rid.lower())]
                                 ) + float(self._latency("snapshot", k)[0])
        self.snapshots_taken += 1
        return ShadowDraft(source, key, name, rid, now, t, tag)

    def shadow_disk(self, draft: ShadowDraft) -> float:
        """Step 2: a managed disk from that snapshot; returns when it is ready."""
        draft.ready += float(self._latency("disk_from_snapshot", np.array([draft.key]))[0])
        return draft.ready

    def spot_available(self, sku: str) -> bool:
        return sku not in self.faults.spot_unavailable_skus and sku_info(sku).spot_usd_hour is not None

    def launch_shadow(self, draft: ShadowDraft, sku: str, zone: str, spot_fallback: str,
                      resource_id: str | None = None) -> ShadowInfo:
        """Step 3: the VM on that disk, Spot or (if Spot is refused and policy allows) regular-priced."""
        src = self.vm_info(draft.source)
        source = draft.source
        key, rid = draft.key, resource_id or draft.rid
        n = len(self.ids)
        k = np.array([key])
        t = draft.ready
        spot = self.spot_available(sku)
        asked = sku
        if not spot and spot_fallback == "family":
            # one try on the nearest size of the same series, as the Azure adapter makes it
            alternatives = family_alternatives(sku)
            if alternatives and self.spot_available(alternatives[0]):
                sku, spot = alternatives[0], True
        if not spot and spot_fallback != "regular":
            self.clock.advance_to(t)
            raise CapacityUnavailable(f"Spot capacity refused for {asked} in zone {zone}", operation="create_vm",
                                      resource=rid, status=409)
        t += self.arm_delay("create_vm", rid) + float(self._latency("spot_vm_create", k)[0])
        rate = self.faults.spot_evictions_per_hour if spot else 0.0
        evict = t + (-math.log(float(uniform(self.seed, Stream.EVICT, key))) / rate * 60.0 if rate > 0 else math.inf)
        ss, img = int(self.t["ss"][source]), int(self.t["img"][source])
        sku_c, zone_c = self._code(self._skus, sku), self._code(self._zones, zone)
        mem = float(np.clip(60.0 + 10.0 * normal(self.seed, Stream.MEM_BASE, key), 30.0, 90.0))
        row: dict[str, NDArray[Any]] = {
            "key": np.array([key], dtype=np.int64), "ss": np.array([ss], dtype=np.int32),
            "sku": np.array([sku_c], dtype=np.int32), "img": np.array([img], dtype=np.int32),
            "zone": np.array([zone_c], dtype=np.int32), "m": np.array([0.0]), "amp": np.array([0.0]),
            "noise": np.array([0.02]), "mem_base": np.array([mem]),
            "vcpus": np.array([float(sku_info(sku).vcpus)]),
            "drive_target": np.array([np.nan]), "drive_start": np.array([np.inf]), "drive_stop": np.array([np.inf]),
            "exists_from": np.array([t]), "exists_to": np.array([evict]),
            "apply_at": np.array([np.nan]), "apply_done": np.array([np.nan]),
            "restore_start": np.array([np.nan]), "restore_done": np.array([np.nan]),
            "t0": np.full((len(MODES), 1), np.inf), "sev": np.zeros((len(MODES), 1)),
            "down_at": np.array([np.inf]), "oom_at": np.array([np.inf]), "sat_at": np.array([np.inf]),
            "imp_at": np.array([np.inf]),
            "match": self._static_match(np.array([ss]), np.array([sku_c]), np.array([img]), np.array([zone_c])),
        }
        self._append_rows(row)
        self._by_id[rid] = n
        self.ids.append(rid)
        self.names.append(rid.rsplit("/", 1)[-1])
        self.shadow_rows.append(n)
        self.shadow_spot[n] = spot
        self.shadow_created_at[n] = draft.started
        self.shadow_source[n] = source
        self.shadow_tag[n] = draft.tag
        self.clock.advance_to(t)
        msg = ("" if sku == asked else f"Spot refused for {asked}: Spot {sku} of the same family") if spot else \
            f"Spot refused for {sku}: regular-priced VM"
        return ShadowInfo(rid, src.vm_id, src.stratum.key, sku, zone, spot, ShadowState.RUNNING, msg)

    def existing_shadow(self, resource_id: str) -> ShadowInfo | None:
        """The shadow of that name, if one was ever created (what a GET before the PUT finds)."""
        i = self._by_id.get(resource_id)
        if i is None or i not in self.shadow_source:
            return None
        src = self.vm_info(self.shadow_source[i])
        zone = self._zones[int(self.t["zone"][i])]
        spot = self.shadow_spot.get(i, True)
        return ShadowInfo(resource_id, src.vm_id, src.stratum.key, self.sku_of(i), zone, spot, self.shadow_state(i),
                          "" if spot else f"Spot refused for {self.sku_of(i)}: regular-priced VM")

    def live_shadows(self) -> dict[str, str]:
        """Every shadow not deleted (running, or evicted with its disk left) and its tag: what a janitor lists."""
        return {self.ids[i]: self.shadow_tag.get(i, "") for i in self.shadow_rows
                if i not in self._deleted and i not in self._cleaned}

    def shadow_state(self, i: int) -> ShadowState:
        now = self.clock.now
        if self.t["exists_to"][i] <= now:
            return ShadowState.DELETED if i in self._deleted else ShadowState.EVICTED
        if self.t["exists_to"][i] - EVICTION_NOTICE_MINUTES <= now:
            return ShadowState.EVICTING  # the Scheduled Events 'Preempt' notice
        return ShadowState.RUNNING

    def drive(self, idx: NDArray[np.int64], targets: NDArray[np.float64]) -> None:
        now = self.clock.now + 0.5
        self.t["drive_target"][idx] = targets
        self.t["drive_start"][idx] = np.minimum(self.t["drive_start"][idx], now)
        self.clock.advance_to(now)

    def delete_shadows(self, idx: NDArray[np.int64]) -> int:
        now = self.clock.now
        deleted = self._deleted
        count = 0
        for i in idx:
            i = int(i)
            if i in deleted or i in self._cleaned:
                continue
            if self.t["exists_to"][i] > now:
                self.t["exists_to"][i] = now
                deleted.add(i)
            else:
                self._cleaned.add(i)  # evicted earlier: its disk is swept now
            self.t["drive_stop"][i] = min(self.t["drive_stop"][i], now)
            count += 1
        if count:
            self.clock.advance_to(now + float(self._latency("delete", np.array([count]))[0]))
        return count

    # ------------------------------------------------------------------ the truth, at the end
    def effect_matches(self, idx: NDArray[np.int64], util: NDArray[np.float64]) -> list[NDArray[np.bool_]]:
        """Per effect: which rows match its ``when`` at the given utilisation (load included), ignoring the
        per-VM probability draw. The truth's risk score and the truth's affected set both start here."""
        out = []
        for e, eff in enumerate(self.effects):
            m = self.t["match"][e, idx].copy()
            if eff.when.load_above is not None:
                m &= util > eff.when.load_above
            out.append(m)
        return out

    def affected_if_applied(self, idx: NDArray[np.int64], minute: float) -> NDArray[np.bool_]:
        """Truth: would each row be affected if the change reached it at ``minute``? (For training labels.)"""
        from .accounting import affected_if_applied

        return affected_if_applied(self, idx, self.utilisation(idx, np.array([int(minute)]))[:, 0])

    def truth_risk(self, idx: NDArray[np.int64], minute: float) -> NDArray[np.float64]:
        """The truth's own risk score: the chance a matching effect hits each row (0 where none matches)."""
        miss = np.ones(len(idx))
        util = self.utilisation(idx, np.array([int(minute)]))[:, 0]
        for eff, m in zip(self.effects, self.effect_matches(idx, util), strict=True):
            miss *= np.where(m, 1.0 - eff.probability, 1.0)
        return 1.0 - miss

    def outcome(self, *, strategy: str, believed: dict[str, str], halted: bool, finished_at: float,
                decisions: list[dict[str, Any]]) -> dict[str, Any]:
        """The contract's outcome object, measured from the ground truth."""
        from .accounting import account

        return account(self, strategy=strategy, believed=believed, halted=halted, finished_at=finished_at,
                       decisions=decisions)

    @property
    def coverage(self) -> dict[tuple[int, int, int, int], bool]:
        """Strata covered by a shadow on the source's SKU and zone that got the change and was not evicted."""
        out: dict[tuple[int, int, int, int], bool] = {}
        T = self.t
        for row, src in self.shadow_source.items():
            stratum = (int(T["ss"][src]), int(T["sku"][src]), int(T["img"][src]), int(T["zone"][src]))
            ok = (int(T["sku"][row]) == stratum[1] and int(T["zone"][row]) == stratum[3]
                  and not math.isnan(T["apply_at"][row]) and row in self._deleted)
            out[stratum] = out.get(stratum, False) or ok
        return out

    def leaked(self) -> dict[str, int]:
        """What is left behind now, read from the world: shadows (VMs or, once evicted, disks) never deleted,
        instances beyond each scale set's original capacity, and pre-change snapshots of a rollout that changed no
        production VM (none can be restored from; once a VM was changed they are kept for its rollback)."""
        shadows = sum(1 for i in self.shadow_rows if i not in self._deleted and i not in self._cleaned)
        extra = sum(max(0, st.capacity - st.original) for st in self.scale_sets.values())
        changed = bool(np.any(~np.isnan(self.t["apply_at"][: self.n_production])))
        snapshots = 0 if changed else sum(len(v) for v in self.snapshots.values())
        return {"shadows": shadows, "extra_instances": extra, "snapshots": snapshots}

    def spot_price(self, i: int) -> float:
        sku = self._skus[int(self.t["sku"][i])]
        return hourly_price(sku, self.region, spot=self.shadow_spot.get(i, True))

    def sku_of(self, i: int) -> str:
        return self._skus[int(self.t["sku"][i])]


def _charges(op: str, resource: str) -> list[Charge]:
    """The requests a logical operation sends (as the Azure adapters send them); docs/azure-adapters.md."""
    rid = resource.lower()
    instance = "/virtualmachinescalesets/" in rid
    update = Charge(ArmKind.WRITES, "UpdateVMSSVMs" if instance else "UpdateVM", rid)
    if op in ("apply:run-command", "apply:extension"):
        return [update]
    if op == "snapshot":
        return [WRITE]
    if op == "restore":  # Uniform: reimage; Flexible: disk, deallocate, swap, start
        return [update] if instance else [WRITE, Charge(ArmKind.WRITES, "DeleteVM", rid), update, update]
    if op == "vmss_update":
        return [Charge(ArmKind.WRITES, "UpdateVMSS", rid)]
    return []  # create_vm (spent with its snapshot), model-update (one request per scale set)
