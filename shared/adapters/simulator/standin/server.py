"""An Azure-shaped HTTP face for a :class:`FleetWorld`: the ARM compute operations, the Azure Monitor metrics
batch API and the Log Analytics query API that the Azure adapters use, on 127.0.0.1 and a free port.

It wraps the same world as the simulator's in-process adapters, so a rollout through the real Azure SDKs
against it ends exactly as one through the simulator. How it keeps time:

* An operation starts at the world clock (the local Durable runner sets it before each activity) and runs
  the world's own operation, which says when it ends; the clock is put back, so that the other operations
  the client starts in the same batch start at the same moment, as they would run in parallel in Azure.
* Long-running operations answer ``Azure-AsyncOperation`` and ``Location``; the first poll answers
  ``InProgress`` with a ``Retry-After`` of the virtual time left and moves the clock to the operation's end
  (the client waited that long); the next poll gives the terminal state. A client configured for the
  stand-in sleeps no wall time (see ``shared.adapters.azure.clients``).
* A shadow is three requests (snapshot, disk, VM); each step is timed from the end of the shadow's previous
  step, as a client that pipelines each shadow's steps would see it.
* ARM faults: each attempt of a logical operation draws from ``FleetWorld.arm_attempt`` (the same draws the
  simulator makes) and is answered 429 with ``Retry-After`` or 500/503; azure-core's retry policy retries;
  the virtual time lost is handed to the world's operation, so both backends lose the same minutes.

The guest side is simulated too: a Run Command script that sets ``SHADOW_ROLLOUT_LOAD_TARGET`` starts the
load generator at that utilisation; the change's time limit is the ``timeoutInSeconds`` of a managed Run
Command or the ``timeout N`` that bounds an extension's command. Log Analytics queries are recognised by
their ``// query:`` header line (the stand-in does not interpret KQL).
"""

from __future__ import annotations

import io
import json
import math
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import requests
import requests.adapters
from requests.structures import CaseInsensitiveDict

from ....domain.errors import AzureOperationError, Conflict, NotFound, Throttled
from ....domain.model import ApplyStatus, ChangeSpec
from ...azure.limits import Budget, classify
from ..adapters import to_datetime, to_minute
from ..prices import sku_info
from ..world import CLOCK_RESOLUTION, FLEET_RG, MAX_ARM_ATTEMPTS, SHADOW_RG, SUBSCRIPTION, FleetWorld, ShadowDraft
from .validation import BodyRefused, model_for, validate

LOAD_TARGET = re.compile(r"SHADOW_ROLLOUT_LOAD_TARGET=([0-9.]+)")
TIMEOUT_PREFIX = re.compile(r"^\s*timeout\s+(\d+)\s")
QUERY_NAME = re.compile(r"^//\s*query:\s*([a-z_]+)", re.MULTILINE)
QUERY_IDS = re.compile(r"dynamic\((\[.*?\])\)", re.DOTALL)
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
    polls_left: int = 1


@dataclass
class _Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class AzureStandIn:
    """Start with :meth:`start` (or as a context manager); ``url`` is the base URL for every client."""

    def __init__(self, world: FleetWorld, *, min_polls: int = 1, page_size: int = 100, data_disks: int = 0) -> None:
        """``data_disks``: data disks per production VM (the world models OS disks only; these are kept here)."""
        self.world = world
        self.data_disks = data_disks
        self.attached: dict[str, list[dict[str, Any]]] = {}
        """VM id (lower) -> its data disks, once changed by a request."""
        self.apply_log: dict[str, tuple[float, str]] = {}
        """VM id (lower) -> when ARM finished the change on it and how (the Activity log)."""
        self.min_polls = min_polls
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
        self._reimages: dict[int, int] = {}
        """Production VMs whose OS disk was swapped (restored): VM id -> the disk it runs on now."""
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
        self._headers: dict[str, str] = {}
        self.request_clock = _RequestClock(self)
        """What the adapters' limiter waits on against this stand-in (``clients.PacingClock``)."""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., _Response]]] = [
            (m, re.compile(f"^{p}$", re.IGNORECASE), h) for m, p, h in self._route_table()]

    # ------------------------------------------------------------------ lifecycle
    IN_PROCESS_URL = "http://azure-standin.invalid"
    """The base URL of a stand-in reached through :class:`InProcessAdapter` (no socket)."""

    def start_in_process(self) -> AzureStandIn:
        """Serve through the in-process transport only (``InProcessAdapter``): no socket, no server thread."""
        self._in_process = True
        return self

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

    def serve_realtime(self, *, speed: float = 1.0) -> None:
        """Standing alone: the world's clock runs with the wall clock (times ``speed``), so long-running
        operations complete while a client polls them at Retry-After."""
        self._realtime = (time.monotonic(), self.world.clock.now, speed)
        self.min_polls = 0

    def _tick(self) -> None:
        if self._realtime is not None:
            t0, minute0, speed = self._realtime
            self.world.clock.advance_to(minute0 + (time.monotonic() - t0) * speed / 60.0)

    def start(self, *, port: int = 0, tls: tuple[str, str] | None = None) -> AzureStandIn:
        """Serve on 127.0.0.1 (``port`` 0: a free one), over TLS with (cert file, key file) if given."""
        standin = self

        class Handler(_Handler):
            pass

        Handler.standin = standin
        self._server = _QuietServer(("127.0.0.1", port), Handler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self._tls = True
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="azure-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> AzureStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, *faults: ScriptedFault) -> None:
        with self._lock:
            self._faults.extend(faults)

    # ------------------------------------------------------------------ the request clock and the budget
    def now_seconds(self) -> float:
        """The request clock: the world's, or later while clients wait for their budget (no world time passes)."""
        return max(self.world.clock.now * 60.0, self._paced)

    def sleep_until(self, t: float) -> None:
        with self._lock:
            self._paced = max(self._paced, t)

    def _charge(self, method: str, path: str, query: dict[str, str], principal: str) -> _Response | None:
        """Spend the request's tokens, or answer 429 as ARM (subscription buckets) or Compute (policies) does."""
        low = path.lower()
        arm = low.startswith("/subscriptions/") and not low.endswith("metrics:getbatch")
        rec: dict[str, Any] = {"t": round(self.now_seconds(), 3), "method": method, "path": path,
                               "api_version": query.get("api-version", ""), "status": 0, "principal": principal,
                               "throttled": False}
        self.request_log.append(rec)
        if not arm:
            return None
        charge = classify(method, path)
        decision = self.budget.take(charge, principal, self.now_seconds())
        self._headers = decision.headers
        self.overdrawn += decision.overdrawn
        if decision.ok:
            return None
        rec["throttled"] = True
        retry = str(max(1, math.ceil(decision.retry_after)))
        code = "SubscriptionRequestsThrottled" if charge.policy is None else "OperationNotAllowed"
        return _error(429, code, f"Number of '{charge.kind}' requests for subscription and principal {principal} "
                      f"exceeded{'' if charge.policy is None else f' (policy Microsoft.Compute/{charge.policy})'}."
                      f" Please try again after '{retry}' seconds.", {**decision.headers, "Retry-After": retry})

    def _record(self, resp: _Response) -> _Response:
        if self.request_log:
            rec = self.request_log[-1]
            rec["status"] = resp.status
            if self.azure_log is not None:
                self.azure_log.write(json.dumps(rec) + "\n")
        for k, v in self._headers.items():
            resp.headers.setdefault(k, v)
        self._headers = {}
        return resp

    def serve(self, method: str, raw_path: str, body: bytes, headers: Any = None) -> tuple[int, dict[str, str],
                                                                                           bytes]:
        """One request as the wire sees it: status, headers and body bytes (the socket server's and the
        in-process transport's common path)."""
        with self._lock:
            self._current_path = urlsplit(raw_path).path
            resp = self.handle(method, raw_path, body, headers)
            date = format_datetime(to_datetime(self.now).astimezone(UTC), usegmt=True)
        payload = resp.body if isinstance(resp.body, bytes) else (
            resp.body.encode() if isinstance(resp.body, str) else (b"" if resp.body is None else
                                                                   json.dumps(resp.body).encode()))
        out = {**resp.headers, "Date": date, "x-ms-request-id": uuid.uuid4().hex}
        if payload:
            out["Content-Type"] = "application/json; charset=utf-8"
        return resp.status, out, payload

    # ------------------------------------------------------------------ dispatch
    def handle(self, method: str, raw_path: str, body: bytes, headers: Any = None) -> _Response:
        with self._lock:
            self._tick()
            return self._record(self._handle(method, raw_path, body, headers))

    def _handle(self, method: str, raw_path: str, body: bytes, headers: Any = None) -> _Response:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        auth = str((headers or {}).get("Authorization") or "")
        principal = uuid.uuid5(uuid.NAMESPACE_OID, auth).hex[:12] if auth else "anonymous"
        with self._lock:
            throttled = self._charge(method, path, query, principal)
            if throttled is not None:
                return throttled
            self.requests.append((method, path))
            for f in self._faults:
                if f.times > 0 and f.method == method and re.search(f.path, path, re.IGNORECASE):
                    f.times -= 1
                    return _Response(f.status, f.body, dict(f.headers))
            try:
                data = json.loads(body) if body else None
            except json.JSONDecodeError:
                return _error(400, "InvalidRequestContent", "The request content was invalid and could not be "
                              "deserialized.")
            self.bodies.append((method, path, data))
            if "api-version" not in query and not path.startswith("/v1/"):  # Log Analytics has no api-version
                return _error(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) "
                              "is required for all requests.")
            for m, pattern, handler in self._routes:
                match = pattern.match(path)
                if m == method and match:
                    try:
                        spec = model_for(handler.__name__, match.groupdict())
                        if spec is not None and (data is not None or method == "PUT"):
                            validate(data, spec[0], create=spec[1])
                        return handler(match=match.groupdict(), query=query, body=data)
                    except BodyRefused as exc:
                        return _error(400, exc.code, exc.message, target=exc.target)
                    except _HttpError as exc:
                        return _error(exc.status, exc.code, exc.message, exc.headers, exc.target)
                    except NotFound as exc:
                        return _error(404, "ResourceNotFound", str(exc))
                    except Conflict as exc:
                        return _error(409, "Conflict", str(exc))
                    except Throttled as exc:
                        return _error(429, "TooManyRequests", str(exc), {"Retry-After": "0"})
                    except AzureOperationError as exc:
                        return _error(exc.status or 500, "InternalServerError", str(exc))
                    except (KeyError, TypeError, ValueError) as exc:
                        return _error(400, "InvalidParameter", f"the request body is not valid: {exc}")
            return _error(404, "NotFound" if any(p.match(path) for _, p, _ in self._routes) else "InvalidResourceType",
                          f"no {method} {path} here")

    def _route_table(self) -> list[tuple[str, str, Callable[..., _Response]]]:
        ops = r"/subscriptions/[^/]+/providers/Microsoft\.Compute/locations/[^/]+/operations/(?P<op>[^/]+)"
        return [
            ("GET", ops, self._get_operation),
            ("GET", _SS, self._get_scale_set),
            ("PUT", _SS, self._put_scale_set),
            ("PATCH", _SS, self._patch_scale_set),
            ("GET", _SS + "/virtualMachines", self._list_instances),
            ("GET", _SSVM, self._get_instance),
            ("PUT", _SSVM, self._put_instance),
            ("GET", _SSVM + "/instanceView", self._get_instance_view),
            ("POST", _SS + "/manualupgrade", self._update_instances),
            ("POST", _SS + "/delete", self._delete_instances),
            ("POST", _SSVM + "/reimage", self._reimage),
            ("POST", _SSVM + "/runCommand", self._action_run_command),
            ("PUT", _SSVM + "/runCommands/(?P<name>[^/]+)", self._put_run_command),
            ("GET", _SSVM + "/runCommands/(?P<name>[^/]+)", self._get_run_command),
            ("PUT", _SSVM + "/extensions/(?P<name>[^/]+)", self._put_extension),
            ("GET", _SSVM + "/extensions/(?P<name>[^/]+)", self._get_extension),
            ("GET", _RG + "/virtualMachines", self._list_vms),
            ("GET", _VM, self._get_vm),
            ("GET", _VM + "/instanceView", self._get_instance_view),
            ("PUT", _VM, self._put_vm),
            ("PATCH", _VM, self._patch_vm),
            ("POST", _VM + "/deallocate", self._power),
            ("POST", _VM + "/start", self._power),
            ("POST", _VM + "/runCommand", self._action_run_command),
            ("PUT", _VM + "/runCommands/(?P<name>[^/]+)", self._put_run_command),
            ("GET", _VM + "/runCommands/(?P<name>[^/]+)", self._get_run_command),
            ("PUT", _VM + "/extensions/(?P<name>[^/]+)", self._put_extension),
            ("GET", _VM + "/extensions/(?P<name>[^/]+)", self._get_extension),
            ("PUT", _RG + "/snapshots/(?P<name>[^/]+)", self._put_snapshot),
            ("GET", _RG + "/snapshots/(?P<name>[^/]+)", self._get_snapshot),
            ("DELETE", _RG + "/snapshots/(?P<name>[^/]+)", self._delete_snapshot),
            ("GET", _RG + "/snapshots", self._list_snapshots),
            ("PUT", _RG + "/disks/(?P<name>[^/]+)", self._put_disk),
            ("GET", _RG + "/disks/(?P<name>[^/]+)", self._get_disk),
            ("DELETE", _RG + "/disks/(?P<name>[^/]+)", self._delete_disk),
            ("POST", r"/subscriptions/(?P<sub>[^/]+)/metrics:getBatch", self._metrics_batch),
            ("POST", r"/v1/workspaces/(?P<ws>[^/]+)/query", self._logs_query),
        ]

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
                        ok, error, result, self.min_polls)
        self._ops[op.id] = op
        return op

    def _lro(self, status: int, body: Any, op: _Operation, *, location: bool = False) -> _Response:
        base = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/{self.world.region}/operations/"
        headers = {"Azure-AsyncOperation": f"{self.url}{base}{op.id}?api-version=2024-11-01"}
        if location:
            headers["Location"] = f"{self.url}{base}{op.id}?monitor=true&api-version=2024-11-01"
        return _Response(status, body, headers)

    def _get_operation(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        op = self._ops.get(match["op"])
        if op is None:
            raise _HttpError(404, "NotFound", f"operation {match['op']} not found")
        if self._realtime is not None and self.now < op.done_at:  # standing alone: the client really waits
            retry = {"Retry-After": str(max(1, math.ceil((op.done_at - self.now) * 60.0 / self._realtime[2])))}
            if query.get("monitor"):
                return _Response(202, None, {**retry, "Location": f"{self._self_url(op)}?monitor=true&"
                                                                  "api-version=2024-11-01"})
            return _Response(200, {"name": op.id, "status": "InProgress", "startTime": _iso(op.start)}, retry)
        if op.polls_left > 0 or self.now < op.done_at:
            op.polls_left -= 1
            wait = max(0.0, op.done_at - self.now)
            self.world.clock.advance_to(op.done_at)  # the client waits Retry-After before it asks again
            headers = {"Retry-After": _seconds(wait)}
            if query.get("monitor"):
                return _Response(202, None, {**headers, "Location": f"{self.url}{urlsplit(self._self_url(op)).path}"
                                                                    f"?monitor=true&api-version=2024-11-01"})
            return _Response(200, {"name": op.id, "status": "InProgress", "startTime": _iso(op.start)}, headers)
        if query.get("monitor"):
            if not op.ok:
                return _Response(200, {"error": op.error})
            return _Response(200, op.result) if op.result is not None else _Response(204)
        out: dict[str, Any] = {"name": op.id, "status": "Succeeded" if op.ok else "Failed",
                               "startTime": _iso(op.start), "endTime": _iso(op.done_at)}
        if not op.ok:
            out["error"] = op.error
        if op.result is not None:
            out["properties"] = {"output": op.result}
        return _Response(200, out)

    def _self_url(self, op: _Operation) -> str:
        return f"{self.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/" \
               f"{self.world.region}/operations/{op.id}"

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

    def _vm_json(self, i: int) -> dict[str, Any]:
        """A production VM (Flexible member or Uniform instance) as ARM shows it."""
        info = self.world.vm_info(i)
        vm_id = self.world.ids[i]
        name = self.world.names[i]
        ss = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{FLEET_RG}/providers/Microsoft.Compute/" \
             f"virtualMachineScaleSets/{info.scale_set}"
        image = {"id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{FLEET_RG}/providers/Microsoft.Compute/"
                       f"galleries/fleet/images/{info.image}/versions/latest"}
        disk_id = self._current_os_disk(i)
        storage = {"imageReference": image, "osDisk": {"osType": "Linux", "name": disk_id.rsplit("/", 1)[-1],
                                                      "createOption": "FromImage",
                                                      "managedDisk": {"id": disk_id}},
                   "dataDisks": self._data_disks(i)}
        body: dict[str, Any] = {"id": vm_id, "name": name.replace("/", "_"), "location": self.world.region,
                                **({"zones": [info.zone]} if info.zone else {})}
        plan = self.plans.get(info.image)
        if plan is not None:
            body["plan"] = plan
        if info.orchestration == "Uniform":
            body.update(type="Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
                        instanceId=name.rsplit("/", 1)[-1], sku={"name": info.sku, "tier": "Standard"},
                        properties={"latestModelApplied": True, "provisioningState": "Succeeded",
                                    "securityProfile": TRUSTED_LAUNCH,
                                    "storageProfile": storage})
        else:
            body.update(type="Microsoft.Compute/virtualMachines",
                        properties={"hardwareProfile": {"vmSize": info.sku}, "storageProfile": storage,
                                    "securityProfile": TRUSTED_LAUNCH,
                                    "virtualMachineScaleSet": {"id": ss}, "provisioningState": "Succeeded"})
        return body

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

    def _current_os_disk(self, i: int) -> str:
        return self.os_disks.get(self.world.ids[i].lower()) or self.world.vm_info(i).os_disk_id

    # ------------------------------------------------------------------ scale sets
    def _get_scale_set(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        pool = self.pools.get(_rid(match, "virtualMachineScaleSets", match["ss"]).lower())
        if pool is not None:
            return _Response(200, pool)
        st = self.world.scale_sets[self._scale_set(match["ss"])]
        model = _with_guest_extensions(self.models.get(st.name, {}), st.extensions)
        rows = self.world.inventory(st.name)
        return _Response(200, {
            "id": _rid(match, "virtualMachineScaleSets", st.name), "name": st.name,
            "type": "Microsoft.Compute/virtualMachineScaleSets", "location": self.world.region,
            "sku": {"name": rows[0].sku if rows else "Standard_D4s_v5", "tier": "Standard", "capacity": st.capacity},
            "properties": {"orchestrationMode": st.orchestration, "provisioningState": "Succeeded",
                           "upgradePolicy": {"mode": "Manual"}, "virtualMachineProfile": model or None},
        })

    def _put_scale_set(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        if match["rg"].lower() != SHADOW_RG.lower():
            raise _HttpError(409, "OperationNotAllowed", "production scale sets are not created by this service")
        props = body["properties"]
        if props.get("orchestrationMode") != "Flexible":
            raise _HttpError(400, "InvalidParameter", "the shadow pool must be a Flexible scale set")
        rid = _rid(match, "virtualMachineScaleSets", match["ss"])
        created = rid.lower() not in self.pools
        pool = {"id": rid, "name": match["ss"], "type": "Microsoft.Compute/virtualMachineScaleSets",
                "location": body["location"], "tags": body.get("tags", {}),
                "properties": {**props, "provisioningState": "Succeeded"}}
        self.pools[rid.lower()] = pool
        return self._lro(201 if created else 200, {**pool, "properties": {**props, "provisioningState": "Creating"}},
                         self._operation(self.now))

    def _patch_scale_set(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        name = self._scale_set(match["ss"])
        done = self.now
        if "virtualMachineProfile" in (body.get("properties") or {}):
            self.models[name] = body["properties"]["virtualMachineProfile"]
        capacity = (body.get("sku") or {}).get("capacity")
        if capacity is not None:
            if not isinstance(capacity, int) or capacity < 0 or capacity > 1000:
                raise _HttpError(400, "InvalidParameter", f"sku.capacity must be 0..1000 (got {capacity!r})")
            self._gate("vmss_update", name)
            _, done = self._world_call("vmss_update", name, lambda: self.world.set_capacity(name, capacity))
        current = self._get_scale_set(match, query, None).body
        return self._lro(200, current, self._operation(done))

    def _list_instances(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        name = self._scale_set(match["ss"])
        if self.world.scale_sets[name].orchestration != "Uniform":
            return _Response(200, {"value": []})
        rows = [self.world.index_of(v.vm_id) for v in self.world.inventory(name)]
        return self._page(rows, query, match)

    def _page(self, rows: list[int], query: dict[str, str], match: dict[str, str]) -> _Response:
        skip = int(query.get("$skiptoken", "0"))
        page = rows[skip:skip + self.page_size]
        out: dict[str, Any] = {"value": [self._vm_json(i) for i in page]}
        if skip + self.page_size < len(rows):
            q = "&".join(f"{k}={v}" for k, v in query.items() if k != "$skiptoken")
            out["nextLink"] = f"{self.url}{self._current_path}?{q}&$skiptoken={skip + self.page_size}"
        return _Response(200, out)

    _current_path = ""

    def _get_instance(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        self._scale_set(match["ss"])
        return _Response(200, self._vm_json(self._row(_instance_id(match))))

    def _put_instance(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """A Uniform instance's one per-instance storage change: its data disks (attach/replace)."""
        vm_id = _instance_id(match)
        i = self._row(vm_id)
        disks = ((body.get("properties") or {}).get("storageProfile") or {}).get("dataDisks")
        if not isinstance(disks, list):
            raise _HttpError(400, "InvalidParameter", "only storageProfile.dataDisks can change on an instance")
        for d in disks:
            disk_id = (d.get("managedDisk") or {}).get("id", "")
            if d.get("createOption") == "Attach" and disk_id.lower() not in self.disks:
                raise _HttpError(404, "NotFound", f"disk {disk_id} not found")
        self.attached[vm_id.lower()] = [{k: v for k, v in d.items()} for d in disks]
        return self._lro(200, self._vm_json(i), self._operation(self.now))

    def _get_instance_view(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        vm_id = _instance_id(match) if "iid" in match else _rid(match, "virtualMachines", match["vm"])
        i = self._row(vm_id)
        running = self.world.t["exists_from"][i] <= self.now + CLOCK_RESOLUTION < self.world.t["exists_to"][i]
        power = "PowerState/running" if running and vm_id.lower() not in self._deallocated else "PowerState/deallocated"
        view: dict[str, Any] = {"statuses": [
            {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded"},
            {"code": power, "level": "Info", "displayStatus": power.split("/")[1].capitalize()}]}
        if i in self._instance_status:
            view["extensions"] = [self._instance_status[i]]
        return _Response(200, view)

    def _update_instances(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """``update_instances``: bring the listed instances to the scale set's model (the change)."""
        name = self._scale_set(match["ss"]) if match["rg"].lower() == FLEET_RG.lower() else match["ss"]
        ids = body["instanceIds"]
        model = self.models.get(name) or self.pools.get(_rid(match, "virtualMachineScaleSets", name).lower(), {}).get(
            "properties", {}).get("virtualMachineProfile")
        if not model:
            raise _HttpError(409, "OperationNotAllowed", "the scale set's model has no change to roll out")
        ext = (model.get("extensionProfile") or {}).get("extensions") or []
        if not ext:
            raise _HttpError(400, "InvalidParameter", "the model names no extension")
        command = ext[-1]["properties"].get("settings", {}).get("commandToExecute", "")
        change = ChangeSpec(ext[-1]["name"], "model-update")
        rows = [self._member(match, name, iid) for iid in ids]
        start, finish, failed = self.now, self.now, False
        timeout = _timeout(command)
        for i in rows:
            results, done = self._run_at(partial(self.world.apply, np.array([i]), change, timeout))
            finish = max(finish, done)
            failed = failed or results[0].status is not ApplyStatus.OK
            self.apply_log[self.world.ids[i].lower()] = (done, "Succeeded" if results[0].status is ApplyStatus.OK
                                                         else "Failed")
            self._instance_status[i] = _extension_view(ext[-1]["name"], results[0].status, results[0].exit_code,
                                                       done)
        error = {"code": "VMExtensionProvisioningError",
                 "message": "One or more instances failed to apply the model's extension"} if failed else None
        return self._lro(202, None, self._operation(finish, ok=not failed, error=error, start=start), location=True)

    def _member(self, match: dict[str, str], name: str, iid: str) -> int:
        if match["rg"].lower() == SHADOW_RG.lower() or self.world.scale_sets.get(name) is None or \
                self.world.scale_sets[name].orchestration == "Flexible":
            return self._row(f"/subscriptions/{match['sub']}/resourceGroups/{match['rg']}/providers/"
                             f"Microsoft.Compute/virtualMachines/{iid}")
        return self._row(f"{_rid(match, 'virtualMachineScaleSets', name)}/virtualMachines/{iid}")

    def _delete_instances(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """Delete VMs of the (Flexible) shadow pool, with their OS disks; one batch, one long-running operation."""
        pool = self.pools.get(_rid(match, "virtualMachineScaleSets", match["ss"]).lower())
        if pool is None:
            raise _HttpError(404, "ResourceNotFound", f"scale set {match['ss']} not found")
        rows = []
        for name in body["instanceIds"]:
            vm = self.vms.get(_rid(match, "virtualMachines", name).lower())
            if vm is None:
                raise _HttpError(404, "ResourceNotFound", f"VM {name} is not in scale set {match['ss']}")
            rows.append(self.world.index_of(vm["id"]))
        _, done = self._run_at(lambda: self.world.delete_shadows(np.array(rows, dtype=np.int64)))
        for name in body["instanceIds"]:
            vm = self.vms.pop(_rid(match, "virtualMachines", name).lower())
            self.disks.pop(vm["os_disk"].lower(), None)
        return self._lro(202, None, self._operation(done), location=True)

    # ------------------------------------------------------------------ VMs
    def _list_vms(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        flt = query.get("$filter", "")
        m = re.search(r"'virtualMachineScaleSet/id'\s+eq\s+'([^']+)'", flt)
        if m is None:
            raise _HttpError(400, "InvalidParameter", "list needs $filter='virtualMachineScaleSet/id' eq '<id>'")
        ss_id = m.group(1)
        if ss_id.lower() in self.pools:
            return _Response(200, {"value": [self._shadow_json(v) for v in self.vms.values()
                                             if v["pool"].lower() == ss_id.lower()]})
        name = self._scale_set(ss_id.rsplit("/", 1)[-1])
        if self.world.scale_sets[name].orchestration != "Flexible":
            return _Response(200, {"value": []})
        return self._page([self.world.index_of(v.vm_id) for v in self.world.inventory(name)], query, match)

    def _get_vm(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        rid = _rid(match, "virtualMachines", match["vm"])
        if rid.lower() in self.vms:
            return _Response(200, self._shadow_json(self.vms[rid.lower()]))
        if rid not in self.world._by_id or match["rg"].lower() == SHADOW_RG.lower():
            raise _HttpError(404, "ResourceNotFound", f"The Resource 'Microsoft.Compute/virtualMachines/{match['vm']}'"
                             f" under resource group '{match['rg']}' was not found.")
        return _Response(200, self._vm_json(self.world.index_of(rid)))

    def _shadow_json(self, vm: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in vm.items() if k not in ("pool", "os_disk", "row")}

    def _put_vm(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """Create a shadow: a VM on a disk made from a snapshot of a production VM, in the shadow pool."""
        rid = _rid(match, "virtualMachines", match["vm"])
        if rid in self.world._by_id or rid.lower() in self.vms:
            raise _HttpError(409, "OperationNotAllowed", f"VM {match['vm']} exists; shadows are created once")
        props = body["properties"]
        disk_id = props["storageProfile"]["osDisk"]["managedDisk"]["id"]
        disk = self.disks.get(disk_id.lower())
        if disk is None:
            raise _HttpError(404, "NotFound", f"disk {disk_id} not found")
        draft = self._drafts.get(disk_id.lower())
        if draft is None:
            raise _HttpError(409, "OperationNotAllowed", f"disk {disk_id} is not a shadow disk")
        pool = (props.get("virtualMachineScaleSet") or {}).get("id", "")
        if pool.lower() not in self.pools:
            raise _HttpError(404, "NotFound", f"scale set {pool} not found")
        _check_zones(body, match["vm"], self.world.region)
        disk_security = ((disk["properties"].get("securityProfile") or {}).get("securityType") or "Standard")
        vm_security = ((props.get("securityProfile") or {}).get("securityType") or "Standard")
        if disk_security.lower() != vm_security.lower():
            raise _HttpError(400, "BadRequest", f"Security type of VM '{vm_security}' is not compatible with the "
                             f"security type '{disk_security}' of attached OS Disk.",
                             target="properties.securityProfile.securityType")
        plan = disk["properties"].get("purchasePlan")
        if plan and (body.get("plan") or {}).get("product") != plan.get("product"):
            raise _HttpError(400, "VMMarketplaceInvalidInput", "Creating a virtual machine from Marketplace image or "
                             "a custom image sourced from a Marketplace image requires Plan information in the "
                             "request.", target="plan")
        sku = props["hardwareProfile"]["vmSize"]
        if props.get("priority") == "Spot" and self.spot_vcpu_quota is not None:
            used = sum(sku_info(v["properties"]["hardwareProfile"]["vmSize"]).vcpus for v in self.vms.values()
                       if v["properties"].get("priority") == "Spot")
            need = sku_info(sku).vcpus
            if used + need > self.spot_vcpu_quota:
                raise _HttpError(409, "OperationNotAllowed", "Operation could not be completed as it results in "
                                 "exceeding approved LowPriorityCores quota. Additional details - Location: "
                                 f"{self.world.region}, Current Limit: {self.spot_vcpu_quota}, Current Usage: {used}, "
                                 f"Additional Required: {need}")
        zone = (body.get("zones") or [""])[0]
        spot = props.get("priority") == "Spot"
        vm = {"id": rid, "name": match["vm"], "type": "Microsoft.Compute/virtualMachines", "location": body["location"],
              "zones": body.get("zones"), "tags": body.get("tags", {}),
              "properties": {**props, "provisioningState": "Succeeded"}, "pool": pool, "os_disk": disk_id}
        if spot and not self.world.spot_available(sku):
            return self._lro(201, {**vm, "properties": {**props, "provisioningState": "Creating"}},
                             self._operation(draft.ready, ok=False, error={
                                 "code": "SkuNotAvailable",
                                 "message": f"The requested VM size {sku} is currently not available for Spot in "
                                            f"zone {zone}. Please try another size or deploy to a different location "
                                            "or zone."}))
        self._gate("create_vm", rid)
        _, done = self._world_call("create_vm", rid, lambda: self.world.launch_shadow(
            draft, sku, zone, "skip" if spot else "regular", resource_id=rid))
        vm["row"] = self.world.index_of(rid)
        self.vms[rid.lower()] = vm
        disk["properties"]["diskState"] = "Attached"
        return self._lro(201, {**self._shadow_json(vm), "properties": {**props, "provisioningState": "Creating"}},
                         self._operation(done))

    def _patch_vm(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """Only the OS disk swap (restore from a pre-change snapshot) is modelled."""
        rid = _rid(match, "virtualMachines", match["vm"])
        i = self._row(rid)
        os_disk = ((body.get("properties") or {}).get("storageProfile") or {}).get("osDisk") or {}
        new_disk = (os_disk.get("managedDisk") or {}).get("id")
        if not new_disk:
            raise _HttpError(400, "PropertyChangeNotAllowed", "only the OS disk can be changed on this VM here")
        if rid.lower() not in self._deallocated:
            raise _HttpError(409, "OperationNotAllowed", "The OS disk can only be swapped while the VM is deallocated.")
        disk = self.disks.get(new_disk.lower())
        if disk is None:
            raise _HttpError(404, "NotFound", f"disk {new_disk} not found")
        snapshot = disk["properties"]["creationData"]["sourceResourceId"]
        op = self._restore(i, rid, snapshot)
        if op.ok:
            self.os_disks[rid.lower()] = new_disk
        return self._lro(200, self._vm_json(i), op)

    def _restore(self, i: int, vm_id: str, snapshot: str) -> _Operation:
        """The world's restore; a first attempt that the world says failed is answered Failed, the next succeeds."""
        if i in self._restores:  # the retry after a failed first attempt
            return self._operation(self._restores.pop(i))
        self._gate("restore", vm_id)
        world_sid = self.snapshots.get(snapshot.lower(), {}).get("world_id", snapshot)
        _, done = self._world_call("restore", vm_id, lambda: self.world.restore(np.array([i]), [world_sid]))
        failed_at = self.world.restore_first_failure.pop(i, None)
        if failed_at is not None:
            self._restores[i] = done
            return self._operation(failed_at, ok=False, error={
                "code": "InternalExecutionError", "message": "An internal execution error occurred. Please retry."})
        return self._operation(done)

    def _reimage(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        vm_id = _instance_id(match)
        i = self._row(vm_id)
        taken = self.world.snapshots.get(i, [])
        if not taken and i not in self._restores:
            raise _HttpError(409, "OperationNotAllowed", f"no pre-change snapshot of {vm_id}")
        op = self._restore(i, vm_id, taken[-1][1] if taken else "")
        if op.ok:  # a reimage gives the instance a new OS disk; the old one goes as its deleteOption says
            # (https://learn.microsoft.com/rest/api/compute/virtualmachines/reimage)
            self._reimages[i] = self._reimages.get(i, 0) + 1
            self.os_disks[vm_id.lower()] = f"{self.world.vm_info(i).os_disk_id}_reimage{self._reimages[i]}"
        return self._lro(202, None, op, location=True)

    def _power(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        rid = _rid(match, "virtualMachines", match["vm"])
        self._row(rid)
        if self._current_path.lower().endswith("/deallocate"):
            self._deallocated.add(rid.lower())
        else:
            self._deallocated.discard(rid.lower())
        return self._lro(202, None, self._operation(self.now), location=True)

    # ------------------------------------------------------------------ guest: Run Command and extensions
    def _target(self, match: dict[str, str]) -> tuple[str, int]:
        vm_id = _instance_id(match) if "iid" in match else _rid(match, "virtualMachines", match["vm"])
        i = self._row(vm_id)
        # the runner keeps time in datetimes (microseconds): allow that much
        if not (self.world.t["exists_from"][i] <= self.now + CLOCK_RESOLUTION < self.world.t["exists_to"][i]):
            raise _HttpError(409, "OperationNotAllowed", f"{vm_id} is not running")
        return vm_id, i

    def _action_run_command(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """Action Run Command: the load generator on a shadow, or a script (the post-rollback one)."""
        vm_id, i = self._target(match)
        busy = self._action_busy.get(vm_id.lower())
        if busy is not None and self.now + CLOCK_RESOLUTION < busy:
            raise _HttpError(409, "Conflict", "Run command extension execution is in progress. Please wait for "
                             "completion before invoking a run command.")
        if body.get("commandId") != "RunShellScript" or not isinstance(body.get("script"), list):
            raise _HttpError(400, "InvalidParameter", "commandId must be RunShellScript with a script (list of lines)")
        script = "\n".join(body["script"])
        load = LOAD_TARGET.search(script)
        if load:
            target = float(load.group(1))
            _, done = self._run_at(lambda: self.world.drive(np.array([i]), np.array([target])))
            out, ok = f"load generator started at utilisation {target}", True
        else:
            res, done = self._run_at(lambda: self.world.run_script(np.array([i])))
            ok = res[0][1]
            out = "ok" if ok else "curl: (7) Failed to connect to localhost port 80"
        rc = 0 if ok else 1
        self._action_busy[vm_id.lower()] = done
        result = {"value": [{"code": "ComponentStatus/StdOut/succeeded", "level": "Info",
                             "displayStatus": "Provisioning succeeded", "message": f"{out}\nshadow-rollout-exit={rc}"},
                            {"code": "ComponentStatus/StdErr/succeeded", "level": "Info",
                             "displayStatus": "Provisioning succeeded", "message": ""}]}
        return self._lro(202, None, self._operation(done, result=result), location=True)

    def _put_run_command(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """Managed Run Command: the change itself (kind ``run-command``)."""
        vm_id, i = self._target(match)
        props = body["properties"]
        if not isinstance((props.get("source") or {}).get("script"), str):
            raise _HttpError(400, "InvalidParameter", "properties.source.script (a string) is required")
        timeout = float(props.get("timeoutInSeconds") or DEFAULT_TIMEOUT_MINUTES * 60) / 60.0
        self._gate("apply:run-command", vm_id)
        start = self.now
        results, done = self._world_call("apply:run-command", vm_id, lambda: self.world.apply(
            np.array([i]), ChangeSpec(match["name"], "run-command"), timeout))
        r = results[0]
        state = {ApplyStatus.OK: "Succeeded", ApplyStatus.FAILED: "Failed", ApplyStatus.TIMEOUT: "TimedOut"}[r.status]
        self.apply_log[vm_id.lower()] = (done, "Succeeded" if r.status is ApplyStatus.OK else "Failed")
        rid = f"{vm_id}/runCommands/{match['name']}"
        resource = {"id": rid, "name": match["name"], "location": body.get("location", self.world.region),
                    "type": "Microsoft.Compute/virtualMachines/runCommands",
                    "properties": {**props, "provisioningState": "Succeeded",
                                   "instanceView": {"executionState": state, "exitCode": r.exit_code
                                                    if r.exit_code is not None else -1,
                                                    "output": "", "error": "" if r.exit_code == 0 else "failed",
                                                    "startTime": _iso(start), "endTime": _iso(done)}}}
        self.run_commands[rid.lower()] = resource
        return self._lro(201, _without_view(resource, "Creating"), self._operation(done, start=start))

    def _get_run_command(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        vm_id = _instance_id(match) if "iid" in match else _rid(match, "virtualMachines", match["vm"])
        res = self.run_commands.get(f"{vm_id}/runCommands/{match['name']}".lower())
        if res is None:
            raise _HttpError(404, "ResourceNotFound", f"run command {match['name']} not found")
        return _Response(200, res if query.get("$expand") == "instanceView" else _without_view(res, "Succeeded"))

    def _put_extension(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """A VM extension: the change itself (kind ``extension``)."""
        vm_id, i = self._target(match)
        props = body["properties"]
        for key in ("publisher", "type", "typeHandlerVersion"):
            if not props.get(key):
                raise _HttpError(400, "InvalidParameter", f"properties.{key} is required")
        command = (props.get("settings") or {}).get("commandToExecute", "")
        self._gate("apply:extension", vm_id)
        start = self.now
        results, done = self._world_call("apply:extension", vm_id, lambda: self.world.apply(
            np.array([i]), ChangeSpec(match["name"], "extension"), _timeout(command)))
        r = results[0]
        self.apply_log[vm_id.lower()] = (done, "Succeeded" if r.status is ApplyStatus.OK else "Failed")
        rid = f"{vm_id}/extensions/{match['name']}"
        view = _extension_view(match["name"], r.status, r.exit_code, done)
        resource = {"id": rid, "name": match["name"], "type": "Microsoft.Compute/virtualMachines/extensions",
                    "location": body.get("location", self.world.region),
                    "properties": {**props, "instanceView": view,
                                   "provisioningState": "Succeeded" if r.status is ApplyStatus.OK else "Failed"}}
        self.extensions[rid.lower()] = resource
        error = None if r.status is ApplyStatus.OK else {"code": "VMExtensionProvisioningError",
                                                          "message": view["statuses"][0]["message"]}
        return self._lro(201, _without_view(resource, "Creating"),
                         self._operation(done, ok=error is None, error=error, start=start))

    def _get_extension(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        vm_id = _instance_id(match) if "iid" in match else _rid(match, "virtualMachines", match["vm"])
        res = self.extensions.get(f"{vm_id}/extensions/{match['name']}".lower())
        if res is None:
            raise _HttpError(404, "ResourceNotFound", f"extension {match['name']} not found")
        return _Response(200, res if query.get("$expand") == "instanceView" else _without_view(
            res, res["properties"]["provisioningState"]))

    # ------------------------------------------------------------------ disks and snapshots
    def _put_snapshot(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        props = body["properties"]
        source = props["creationData"]["sourceResourceId"]
        if props["creationData"].get("createOption") != "Copy":
            raise _HttpError(400, "InvalidParameter", "only creationData.createOption=Copy is supported")
        if props.get("incremental") and source.strip("/").split("/")[1].lower() != match["sub"].lower():
            raise _HttpError(400, "InvalidParameter", "An incremental snapshot must be in the subscription of its "
                             f"source disk {source}.", target="properties.creationData.sourceResourceId")
        rid = _rid(match, "snapshots", match["name"])
        if self._is_data_disk(source):  # the world models OS disks only: a data disk's snapshot is bookkeeping
            snap = {"id": rid, "name": match["name"], "type": "Microsoft.Compute/snapshots",
                    "location": body["location"], "tags": body.get("tags", {}),
                    "properties": {**props, "provisioningState": "Succeeded"}}
            self.snapshots[rid.lower()] = snap
            return self._lro(200, _creating(snap), self._operation(self.now))
        owner = self._disk_owner(source)
        snap = {"id": rid, "name": match["name"], "type": "Microsoft.Compute/snapshots", "location": body["location"],
                "tags": body.get("tags", {}), "properties": {**props, "provisioningState": "Succeeded",
                                                              "timeCreated": _iso(self.now),
                                                              **self._disk_lineage(owner)}}
        if match["rg"].lower() == SHADOW_RG.lower():  # step 1 of a shadow
            vm_id = self.world.ids[owner]
            self._gate("snapshot", vm_id)
            draft, _ = self._world_call("snapshot", vm_id, lambda: self.world.begin_shadow(
                owner, body.get("tags", {}).get("shadow-rollout-tag", "shadow")))
            snap["draft"] = draft
            done = draft.ready
        elif owner in self.world._by_id.values() and owner < self.world.n_production:
            vm_id = self.world.ids[owner]
            self._gate("snapshot", vm_id)
            taken, done = self._world_call("snapshot", vm_id, lambda: self.world.snapshot(
                np.array([owner]), "pre", [rid]))
            if not taken:  # the platform's own retries failed too
                snap["properties"]["provisioningState"] = "Failed"
                self.snapshots[rid.lower()] = snap
                return self._lro(200, _creating(snap), self._operation(done, ok=False, error={
                    "code": "InternalDiskManagementError",
                    "message": f"Snapshot {match['name']} could not be created after internal retries."}))
            snap["world_id"] = rid
        else:
            done = self.now
        self.snapshots[rid.lower()] = snap
        return self._lro(200, _creating(snap), self._operation(done))

    def _disk_lineage(self, owner: int) -> dict[str, Any]:
        """What a copy of a production OS disk carries from it: its security type and purchase plan."""
        out: dict[str, Any] = {"securityProfile": {"securityType": TRUSTED_LAUNCH["securityType"]}}
        plan = self.plans.get(self.world.vm_info(owner).image)
        if plan is not None:
            out["purchasePlan"] = {"name": plan["name"], "publisher": plan["publisher"], "product": plan["product"]}
        return out

    def _disk_owner(self, disk_id: str) -> int:
        for i in range(self.world.n_production):
            if self._current_os_disk(i).lower() == disk_id.lower():
                return i
        raise _HttpError(404, "NotFound", f"source disk {disk_id} not found")

    def _get_snapshot(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        snap = self.snapshots.get(_rid(match, "snapshots", match["name"]).lower())
        if snap is None:
            raise _HttpError(404, "ResourceNotFound", f"snapshot {match['name']} not found")
        return _Response(200, _public(snap))

    def _list_snapshots(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        prefix = f"/subscriptions/{match['sub']}/resourcegroups/{match['rg']}/".lower()
        return _Response(200, {"value": [_public(s) for k, s in self.snapshots.items() if k.startswith(prefix)]})

    def _delete_snapshot(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        existed = self.snapshots.pop(_rid(match, "snapshots", match["name"]).lower(), None)
        if existed is None:
            return _Response(204)
        return self._lro(202, None, self._operation(self.now), location=True)

    def _put_disk(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        props = body["properties"]
        source = props["creationData"]["sourceResourceId"]
        snap = self.snapshots.get(source.lower())
        if snap is None:
            raise _HttpError(404, "NotFound", f"source snapshot {source} not found")
        rid = _rid(match, "disks", match["name"])
        _check_zones(body, match["name"], self.world.region)
        lineage = {k: snap["properties"][k] for k in ("securityProfile", "purchasePlan") if k in snap["properties"]}
        disk = {"id": rid, "name": match["name"], "type": "Microsoft.Compute/disks", "location": body["location"],
                "zones": body.get("zones"), "tags": body.get("tags", {}),
                "properties": {**props, **lineage, "provisioningState": "Succeeded", "diskState": "Unattached"}}
        done = self.now
        if "draft" in snap:  # step 2 of a shadow
            draft = snap["draft"]
            done = self.world.shadow_disk(draft)
            self._drafts[rid.lower()] = draft
        self.disks[rid.lower()] = disk
        return self._lro(200, _creating(disk), self._operation(done, start=self.now))

    def _get_disk(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        disk = self.disks.get(_rid(match, "disks", match["name"]).lower())
        if disk is None:
            raise _HttpError(404, "ResourceNotFound", f"disk {match['name']} not found")
        return _Response(200, disk)

    def _delete_disk(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        rid = _rid(match, "disks", match["name"]).lower()
        disk = self.disks.get(rid)
        if disk is None:
            return _Response(204)
        if disk["properties"].get("diskState") == "Attached":
            raise _HttpError(409, "OperationNotAllowed", f"Disk {match['name']} is attached to a VM.")
        del self.disks[rid]
        self._drafts.pop(rid, None)
        return self._lro(202, None, self._operation(self.now), location=True)

    # ------------------------------------------------------------------ Azure Monitor
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

    def _metrics_batch(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        ids = body.get("resourceids") if isinstance(body, dict) else None
        if not ids or len(ids) > 50:
            raise _HttpError(400, "BadRequest", "resourceids must list 1 to 50 resources", target="resourceids")
        namespace = query.get("metricnamespace", "")
        for rid in ids:
            kind = _metric_type(rid)
            if kind.lower() != namespace.lower():
                raise _HttpError(400, "BadRequest", f"Resource {rid} is of type {kind}, not {namespace!r}: a batch "
                                 "is of one subscription, one region and one resource type.", target="resourceids")
            if rid.strip("/").split("/")[1].lower() != match["sub"].lower():
                raise _HttpError(400, "BadRequest", f"Resource {rid} is not in subscription {match['sub']}: a batch "
                                 "is of one subscription, one region and one resource type.", target="resourceids")
        if query.get("interval", "PT1M") != "PT1M":
            raise _HttpError(400, "BadRequest", "only interval=PT1M is served")
        a, b = self._window(query["starttime"], query["endtime"])
        names = query["metricnames"].split(",")
        sig = self._signals(ids, a, b)
        half = sig["net_bytes"] / 2.0  # In and Out each carry half of the world's traffic
        series = {"Percentage CPU": (sig["cpu_pct"], "average", "Percent"),
                  "Available Memory Percentage": (sig["mem_available_pct"], "average", "Percent"),
                  "Network In Total": (half, "total", "Bytes"), "Network Out Total": (half, "total", "Bytes")}
        values = []
        for r, rid in enumerate(ids):
            metrics = []
            for name in names:
                if name not in series:
                    raise _HttpError(400, "BadRequest", f"Failed to find metric configuration for provider: "
                                     f"Microsoft.Compute, resource Type: virtualMachines, metric: {name}")
                arr, agg, unit = series[name]
                data = []
                for k in range(b - a):
                    point: dict[str, Any] = {"timeStamp": _iso(a + k)}
                    if not math.isnan(arr[r, k]):
                        point[agg] = float(arr[r, k])
                    data.append(point)
                metrics.append({"id": f"{rid}/providers/Microsoft.Insights/metrics/{name}", "type":
                                "Microsoft.Insights/metrics", "name": {"value": name, "localizedValue": name},
                                "displayDescription": "", "unit": unit, "errorCode": "Success",
                                "timeseries": [{"metadatavalues": [], "data": data}]})
            values.append({"starttime": _iso(a), "endtime": _iso(b), "interval": "PT1M",
                           "namespace": query.get("metricnamespace", ""), "resourceregion": self.world.region,
                           "resourceid": rid, "value": metrics})
        return _Response(200, {"values": values})

    def _logs_query(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        text = body.get("query", "") if isinstance(body, dict) else ""
        timespan = body.get("timespan", "") if isinstance(body, dict) else ""
        name = QUERY_NAME.search(text)
        ids = QUERY_IDS.search(text)
        if name is None or ids is None or "/" not in timespan:
            raise _HttpError(400, "BadArgumentError", "The request had some invalid properties: the stand-in answers "
                             "the project's named queries with an absolute timespan")
        vm_ids = json.loads(ids.group(1))
        a, b = self._window(*timespan.split("/"))
        if name.group(1) == "apply_results":
            log = [(v, self.apply_log.get(v.lower())) for v in vm_ids]
            rows_ = [[v, _iso(t), status] for v, rec in log if rec is not None
                     for t, status in [rec] if a <= t < b and t <= self.now]
            return _Response(200, {"tables": [{"name": "PrimaryResult", "columns": [
                {"name": "_ResourceId", "type": "string"}, {"name": "TimeGenerated", "type": "datetime"},
                {"name": "Value", "type": "string"}], "rows": rows_}]})
        signal = {"error_counts": "error_count", "health_probes": "health_ok"}.get(name.group(1))
        if signal is None:
            raise _HttpError(400, "SemanticError", f"unknown query {name.group(1)}")
        arr = self._signals(vm_ids, a, b)[signal] if vm_ids else np.zeros((0, 0))
        rows = [[vm_ids[r], _iso(a + k), float(arr[r, k])] for r in range(len(vm_ids)) for k in range(b - a)
                if not math.isnan(arr[r, k])]
        return _Response(200, {"tables": [{"name": "PrimaryResult", "columns": [
            {"name": "_ResourceId", "type": "string"}, {"name": "TimeGenerated", "type": "datetime"},
            {"name": "Value", "type": "real"}], "rows": rows}]})


class InProcessAdapter(requests.adapters.BaseAdapter):
    """A ``requests`` adapter that hands each request to the stand-in in this process (the httpx
    MockTransport habit): azure-core's own ``RequestsTransport`` and pipeline, minus the socket."""

    def __init__(self, standin: AzureStandIn) -> None:
        super().__init__()
        self.standin = standin

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        parts = urlsplit(request.url or "")
        raw = parts.path + (f"?{parts.query}" if parts.query else "")
        body: Any = request.body or b""
        data = body.encode() if isinstance(body, str) else bytes(body)
        status, headers, payload = self.standin.serve(str(request.method), raw, data, request.headers)
        resp = requests.Response()
        resp.status_code = status
        resp.reason = HTTPStatus(status).phrase
        resp.headers = CaseInsensitiveDict(headers)
        resp._content = payload
        resp.raw = io.BytesIO(payload)
        resp.url = request.url or ""
        resp.request = request
        resp.encoding = "utf-8"
        return resp

    def close(self) -> None:
        return None


class _RequestClock:
    """The stand-in's request clock as the adapters' limiter sees it: waiting moves it, not the world."""

    def __init__(self, standin: AzureStandIn) -> None:
        self._standin = standin

    def now(self) -> float:
        with self._standin._lock:
            return self._standin.now_seconds()

    def sleep_until(self, t: float) -> None:
        self._standin.sleep_until(t)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that drops an idle keep-alive connection is not an error; anything else is reported."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    standin: AzureStandIn
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, payload = self.standin.serve(self.command, self.path, body, self.headers)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_PUT = do_PATCH = do_POST = do_DELETE = _serve


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


def _metric_type(rid: str) -> str:
    """The metric resource type of a VM id: Uniform instances are their own type."""
    low = rid.lower()
    if "/virtualmachinescalesets/" in low and "/virtualmachines/" in low:
        return "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"
    return "Microsoft.Compute/virtualMachines"


def _rid(match: dict[str, str], kind: str, name: str) -> str:
    return f"/subscriptions/{match['sub']}/resourceGroups/{match['rg']}/providers/Microsoft.Compute/{kind}/{name}"


def _instance_id(match: dict[str, str]) -> str:
    return f"{_rid(match, 'virtualMachineScaleSets', match['ss'])}/virtualMachines/{match['iid']}"


def _iso(minute: float) -> str:
    return to_datetime(minute).isoformat().replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _seconds(minutes: float) -> str:
    return f"{minutes * 60.0:.6f}".rstrip("0").rstrip(".") or "0"


def _timeout(command: str) -> float:
    m = TIMEOUT_PREFIX.match(command)
    return int(m.group(1)) / 60.0 if m else DEFAULT_TIMEOUT_MINUTES


def _creating(resource: dict[str, Any]) -> dict[str, Any]:
    out = _public(resource)
    return {**out, "properties": {**out["properties"], "provisioningState": "Creating"}}


def _public(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("draft", "world_id")}


def _without_view(resource: dict[str, Any], state: str) -> dict[str, Any]:
    props = {k: v for k, v in resource["properties"].items() if k != "instanceView"}
    return {**resource, "properties": {**props, "provisioningState": state}}


def _extension_view(name: str, status: ApplyStatus, exit_code: int | None, done: float) -> dict[str, Any]:
    if status is ApplyStatus.OK:
        code, msg = "ProvisioningState/succeeded", "Enable succeeded"
    elif status is ApplyStatus.TIMEOUT:
        code, msg = "ProvisioningState/failed/124", "Enable failed: the command timed out (exit code 124)"
    else:
        code, msg = f"ProvisioningState/failed/{exit_code}", f"Enable failed: exit code {exit_code}"
    return {"name": name, "statuses": [{"code": code, "level": "Info" if status is ApplyStatus.OK else "Error",
                                        "displayStatus": code.split("/")[1], "message": msg, "time": _iso(done)}]}


__all__ = ["AzureStandIn", "InProcessAdapter", "ScriptedFault"]


def _with_guest_extensions(model: dict[str, Any], extensions: list[str]) -> dict[str, Any]:
    """The scale set's model as ARM returns it: the scenario's VM extensions (the guest prerequisites: the Azure
    Monitor agent by its type, the guest kit by its name), then any the rollout's model update added."""
    known = {"AzureMonitorLinuxAgent": {"name": "AzureMonitorLinuxAgent", "properties": {
        "publisher": "Microsoft.Azure.Monitor", "type": "AzureMonitorLinuxAgent", "typeHandlerVersion": "1.0"}}}
    guest = [known.get(x) or {"name": x, "properties": {"publisher": "Microsoft.Azure.Extensions",
                                                         "type": "CustomScript", "typeHandlerVersion": "2.1"}}
             for x in extensions]
    if not guest:
        return model
    ext = (model.get("extensionProfile") or {}).get("extensions") or []
    return {**model, "extensionProfile": {**(model.get("extensionProfile") or {}), "extensions": [*guest, *ext]}}
