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

The handlers live by resource family: compute.py (scale sets, instances, VMs), disks.py (disks, snapshots),
guest.py (Run Commands, extensions), metrics.py, logs.py and operations.py (operation status), over base.py
(state, clock, long-running operations, fault gate, lookups); transport.py carries requests in process or over
a socket.
"""

from __future__ import annotations

import json
import math
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ....domain.errors import AzureOperationError, Conflict, NotFound, Throttled
from ...azure.limits import classify
from ..adapters import to_datetime
from ..world import FleetWorld
from .base import (
    _RG,
    _SS,
    _SSVM,
    _VM,
    ScriptedFault,
    _error,
    _HttpError,
    _Response,
)
from .compute import ComputeResources
from .disks import DiskResources
from .guest import GuestCommands
from .logs import LogsQuery
from .metrics import MetricsBatch
from .operations import OperationStatus
from .transport import InProcessAdapter, _Handler, _QuietServer, _RequestClock
from .validation import BodyRefused, model_for, validate


class AzureStandIn(ComputeResources, DiskResources, GuestCommands, MetricsBatch, LogsQuery, OperationStatus):
    """Start with :meth:`start` (or as a context manager); ``url`` is the base URL for every client."""

    def __init__(self, world: FleetWorld, *, page_size: int = 100, data_disks: int = 0) -> None:
        """``data_disks``: data disks per production VM (the world models OS disks only; these are kept here)."""
        super().__init__(world, page_size=page_size, data_disks=data_disks)
        self.request_clock = _RequestClock(self)
        """What the adapters' limiter waits on against this stand-in (``clients.PacingClock``)."""
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., _Response]]] = [
            (m, re.compile(f"^{p}$", re.IGNORECASE), h) for m, p, h in self._route_table()]

    # ------------------------------------------------------------------ lifecycle
    def start_in_process(self) -> AzureStandIn:
        """Serve through the in-process transport only (``InProcessAdapter``): no socket, no server thread."""
        self._in_process = True
        return self

    def serve_realtime(self, *, speed: float = 1.0) -> None:
        """Standing alone: the world's clock runs with the wall clock (times ``speed``), so long-running
        operations complete while a client polls them at Retry-After."""
        self._realtime = (time.monotonic(), self.world.clock.now, speed)

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
            self._wake.at = None  # only an answer about a running operation tells the client how long to wait
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
            ("POST", r"(?:/metrics/(?P<region>[^/]+))?/subscriptions/(?P<sub>[^/]+)/metrics:getBatch",
             self._metrics_batch),
            ("GET", r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Compute/locations/(?P<loc>[^/]+)/"
                    r"virtualMachines", self._list_vms_by_location),
            ("GET", r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Compute/locations/(?P<loc>[^/]+)/"
                    r"virtualMachineScaleSets", self._list_scale_sets_by_location),
            ("POST", r"/v1/workspaces/(?P<ws>[^/]+)/query", self._logs_query),
        ]


__all__ = ["AzureStandIn", "InProcessAdapter", "ScriptedFault"]
