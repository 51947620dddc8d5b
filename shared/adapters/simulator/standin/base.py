"""The stand-in's common ground: its state, clock, long-running operations, fault gate and lookups.

Each resource family (compute, disks, guest commands, metrics, logs, operations) is a mixin over
:class:`StandInBase`; :class:`~.server.AzureStandIn` combines them and routes requests to their handlers.
"""

from __future__ import annotations

import functools
import math
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any

import numpy as np

from ...azure.limits import Budget
from ..adapters import to_datetime, to_minute
from ..world import MAX_ARM_ATTEMPTS, SHADOW_RG, SUBSCRIPTION, FleetWorld, ShadowDraft

_RG = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute"
_VM = _RG + r"/virtualMachines/(?P<vm>[^/]+)"
_SS = _RG + r"/virtualMachineScaleSets/(?P<ss>[^/]+)"
_SSVM = _SS + r"/virtualMachines/(?P<iid>[^/]+)"
DEFAULT_TIMEOUT_MINUTES = 90.0
"""What Azure allows a Run Command or an extension when the caller sets no limit."""
ZONES = ("1", "2", "3")
"""The availability zones of the simulated region."""
TRUSTED_LAUNCH = {"securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}}
"""Trusted Launch is the default security type of new Gen2 VMs: the fleet's VMs and their disks have it."""


class _HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 target: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}
        self.target = target


@dataclass
class ScriptedFault:
    """Test hook: answer the next ``times`` requests matching ``method`` and ``path`` (a regex) like this."""

    method: str
    path: str
    status: int
    body: str | bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass
class _Operation:
    id: str
    start: float
    done_at: float
    ok: bool = True
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None


@dataclass
class _Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)



class StandInBase:
    """What every resource family of the stand-in shares: the world, the resources kept here, the clock,
    long-running operations, the ARM fault gate and the lookups of VMs and scale sets."""

    def __init__(self, world: FleetWorld, *, page_size: int = 100, data_disks: int = 0) -> None:
        """``data_disks``: data disks per production VM (the world models OS disks only; these are kept here)."""
        self.world = world
        self.data_disks = data_disks
        self.attached: dict[str, list[dict[str, Any]]] = {}
        """VM id (lower) -> its data disks, once changed by a request."""
        self.apply_log: dict[str, tuple[float, str]] = {}
        """VM id (lower) -> when ARM finished the change on it and how (the Activity log)."""
        self.page_size = page_size
        self.requests: list[tuple[str, str]] = []
        self.bodies: list[tuple[str, str, Any]] = []
        self._faults: list[ScriptedFault] = []
        self._ops: dict[str, _Operation] = {}
        self._lock = threading.RLock()
        self._pending: dict[tuple[str, str], tuple[int, float]] = {}
        # ARM resources the stand-in keeps itself (lower-cased ids)
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.disks: dict[str, dict[str, Any]] = {}
        self.pools: dict[str, dict[str, Any]] = {}
        self.vms: dict[str, dict[str, Any]] = {}
        self.run_commands: dict[str, dict[str, Any]] = {}
        self.extensions: dict[str, dict[str, Any]] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.os_disks: dict[str, str] = {}
        """Production VMs whose OS disk was swapped or reimaged (restored): VM id -> the disk it runs on now."""
        self._reimages: dict[int, int] = {}
        self._drafts: dict[str, ShadowDraft] = {}
        self._lower: dict[str, int] = {}
        self._restores: dict[int, float] = {}
        self._deallocated: set[str] = set()
        self._instance_status: dict[int, dict[str, Any]] = {}
        self.plans: dict[str, dict[str, str]] = {}
        """Image name -> the marketplace purchase plan its VMs carry (a test sets it)."""
        self.spot_vcpu_quota: int | None = None
        """The region's Spot (low-priority) vCPU quota; None: not limiting."""
        self._action_busy: dict[str, float] = {}
        self.budget = Budget()
        """ARM's and Compute's buckets for the requests on the wire (shared.adapters.azure.limits)."""
        self.request_log: list[dict[str, Any]] = []
        """One record per request: t (seconds), method, path, api_version, status, principal, throttled."""
        self.azure_log: Any = None
        """A text file that gets each record as a JSON line (``--azure-log``)."""
        self.overdrawn = 0
        self._paced = 0.0
        self._tls = False
        self._in_process = False
        self._realtime: tuple[float, float, float] | None = None
        self._wake = threading.local()
        """In process: when the operation this thread last asked about ends (what its Retry-After said), so the
        client's own wait (its transport's ``sleep``) moves the clock there, never the server."""
        self._headers: dict[str, str] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    IN_PROCESS_URL = "http://azure-standin.invalid"
    """The base URL of a stand-in reached through the in-process transport (no socket)."""
    _current_path = ""

    @property
    def in_process(self) -> bool:
        return self._in_process

    @property
    def url(self) -> str:
        if self._in_process:
            return self.IN_PROCESS_URL
        assert self._server is not None, "the stand-in is not started"
        host, port = self._server.server_address[:2]
        return f"{'https' if self._tls else 'http'}://{host!s}:{port}"

    # ------------------------------------------------------------------ time and long-running operations
    @property
    def now(self) -> float:
        return self.world.clock.now

    def _run_at(self, fn: Callable[[], Any], start: float | None = None) -> tuple[Any, float]:
        """Run a world operation from ``start`` (default: now); return its result and when it ended."""
        clock = self.world.clock
        saved = clock.now
        clock.now = saved if start is None else start
        try:
            result = fn()
            return result, clock.now
        finally:
            clock.now = saved

    def _operation(self, done_at: float, *, ok: bool = True, error: dict[str, Any] | None = None,
                   result: dict[str, Any] | None = None, start: float | None = None) -> _Operation:
        op = _Operation(uuid.uuid4().hex, self.now if start is None else start, max(done_at, self.now if start is None
                                                                                   else start),
                        ok, error, result)
        self._ops[op.id] = op
        return op

    def _lro(self, status: int, body: Any, op: _Operation, *, location: bool = False) -> _Response:
        """The answer to a long-running request: where to poll its operation-status resource (ARM's "Track
        asynchronous Azure operations", learn.microsoft.com/azure/azure-resource-manager/management/async-operations).
        No ``Retry-After`` here: Compute's generated clients read it as an integer, and the first status answer
        gives the exact time left."""
        base = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/{self.world.region}/operations/"
        headers = {"Azure-AsyncOperation": f"{self.url}{base}{op.id}?api-version=2024-11-01"}
        if location:
            headers["Location"] = f"{self.url}{base}{op.id}?monitor=true&api-version=2024-11-01"
        return _Response(status, body, headers)

    def _retry_after(self, op: _Operation) -> dict[str, str]:
        """How long the client should wait before asking about ``op``: standing alone, whole seconds of wall
        time at its speed; in process, the exact time left (noted for this thread's next wait)."""
        left = max(0.0, op.done_at - self.now)
        if self._realtime is not None:
            return {"Retry-After": str(max(1, math.ceil(left * 60.0 / self._realtime[2])))}
        self._wake.at = op.done_at
        return {"Retry-After": _seconds(left)}

    def client_waits(self) -> None:
        """In process, the client waited the ``Retry-After`` of its last answer: the clock moves to when that
        operation ends (nothing else in this process runs meanwhile; see ``InProcessAdapter.sleep``)."""
        at = getattr(self._wake, "at", None)
        self._wake.at = None
        if at is not None:
            with self._lock:
                self.world.clock.advance_to(at)

    # ------------------------------------------------------------------ ARM faults from the scenario
    def _gate(self, op: str, resource: str) -> None:
        """Answer this attempt of a logical operation as the world's fault draws say."""
        if not self.world.arm_faults:
            return
        key = (op, resource)
        failures, delay = self._pending.get(key, (0, 0.0))
        kind, lost = self.world.arm_attempt(op, resource, failures)
        if kind == "ok":
            self._pending.pop(key, None)
            self.world.prepay_arm_delay(op, resource, delay)
            return
        failures += 1
        if failures >= MAX_ARM_ATTEMPTS:
            self._pending.pop(key, None)  # the client gives up after this answer
        else:
            self._pending[key] = (failures, delay + lost)
        if kind == "throttled":
            raise _HttpError(429, "TooManyRequests", f"{op}: too many requests, retry later",
                             {"Retry-After": _seconds(lost)})
        raise _HttpError(503 if failures % 2 else 500, "ServiceUnavailable" if failures % 2 else "InternalServerError",
                         f"{op}: the server had an error, retry")

    def _world_call(self, op: str, resource: str, fn: Callable[[], Any], start: float | None = None) -> tuple[Any,
                                                                                                            float]:
        try:
            return self._run_at(fn, start)
        finally:
            self.world.discard_prepaid(op, resource)

    # ------------------------------------------------------------------ lookups
    def _row(self, vm_id: str) -> int:
        """The world's row of a VM; resource ids are case-insensitive in ARM. A deleted shadow is gone."""
        if f"/resourcegroups/{SHADOW_RG}/".lower() in vm_id.lower() and vm_id.lower() not in self.vms:
            raise _HttpError(404, "ResourceNotFound", f"The Resource '{vm_id}' was not found.")
        by_id = self.world._by_id
        if vm_id in by_id:
            return by_id[vm_id]
        if len(self._lower) != len(by_id):
            self._lower = {k.lower(): v for k, v in by_id.items()}
        row = self._lower.get(vm_id.lower())
        if row is None:
            raise _HttpError(404, "ResourceNotFound", f"The Resource '{vm_id}' was not found.")
        return row

    def _scale_set(self, name: str) -> str:
        if name not in self.world.scale_sets:
            raise _HttpError(404, "ResourceNotFound", f"The Resource 'Microsoft.Compute/virtualMachineScaleSets/{name}'"
                             " was not found.")
        return name

    def _current_os_disk(self, i: int) -> str:
        return self.os_disks.get(self.world.ids[i].lower()) or self.world.vm_info(i).os_disk_id

    def _data_disks(self, i: int) -> list[dict[str, Any]]:
        attached = self.attached.get(self.world.ids[i].lower())
        if attached is not None:
            return attached
        base = self.world.vm_info(i).os_disk_id.removesuffix("_osdisk")
        return [{"lun": k, "name": f"{base.rsplit('/', 1)[-1]}_data{k}", "createOption": "Empty", "diskSizeGB": 64,
                 "managedDisk": {"id": f"{base}_data{k}"}} for k in range(self.data_disks)]

    def _is_data_disk(self, disk_id: str) -> bool:
        low = disk_id.lower()
        return any(d["managedDisk"]["id"].lower() == low for i in range(self.world.n_production)
                   for d in self._data_disks(i)) if self.data_disks or self.attached else False

    # ------------------------------------------------------------------ telemetry windows (metrics and logs)
    def _window(self, start: str, end: str) -> tuple[int, int]:
        a = math.floor(to_minute(_parse_time(start)))
        return a, max(a, math.floor(to_minute(_parse_time(end))))

    def _signals(self, ids: list[str], a: int, b: int) -> dict[str, np.ndarray]:
        idx = np.array([self._row(v) for v in ids], dtype=np.int64)
        sig = self.world.signals(idx, a, b)
        visible = math.floor(self.now)  # the minute in progress and the future are not reported
        if b > visible:
            cut = max(0, visible - a)
            for v in sig.values():
                v[:, cut:] = np.nan
        return sig


# ---------------------------------------------------------------------------------------------- helpers
def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None,
           target: str | None = None) -> _Response:
    """ARM's error shape (the common-types ErrorResponse): code, message and the offending field as target."""
    error: dict[str, Any] = {"code": code, "message": message}
    if target:
        error["target"] = target
    return _Response(status, {"error": error}, headers or {})


def _check_zones(body: dict[str, Any], name: str, region: str) -> None:
    """``zones``: absent, empty, or real zones of the region; ``[""]`` is refused."""
    zones = body.get("zones")
    if zones and any(z not in ZONES for z in zones):
        raise _HttpError(400, "InvalidParameter", f"The zone(s) '{','.join(map(str, zones))}' for resource '{name}' "
                         f"is not supported. The supported zones for location '{region}' are '{','.join(ZONES)}'",
                         target="zones")


def _rid(match: dict[str, str], kind: str, name: str) -> str:
    return f"/subscriptions/{match['sub']}/resourceGroups/{match['rg']}/providers/Microsoft.Compute/{kind}/{name}"


def _instance_id(match: dict[str, str]) -> str:
    return f"{_rid(match, 'virtualMachineScaleSets', match['ss'])}/virtualMachines/{match['iid']}"


@functools.lru_cache(maxsize=65536)
def _iso(minute: float) -> str:
    """A simulated minute as ARM writes times; cached, as every metric point of a window repeats its minutes."""
    return to_datetime(minute).isoformat().replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _seconds(minutes: float) -> str:
    return f"{minutes * 60.0:.6f}".rstrip("0").rstrip(".") or "0"


def _creating(resource: dict[str, Any]) -> dict[str, Any]:
    out = _public(resource)
    return {**out, "properties": {**out["properties"], "provisioningState": "Creating"}}


def _public(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("draft", "world_id")}


def _without_view(resource: dict[str, Any], state: str) -> dict[str, Any]:
    props = {k: v for k, v in resource["properties"].items() if k != "instanceView"}
    return {**resource, "properties": {**props, "provisioningState": state}}
