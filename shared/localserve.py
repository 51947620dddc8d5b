"""``shadow-rollout simulate --serve``: one simulated rollout, served on 127.0.0.1 by the function app's own HTTP
functions, as the deployed app serves it.

The local Durable runner delivers the rollout's events at ``speed`` simulated seconds per wall second (a
driver thread); each HTTP request is handed, as an ``azure.functions.HttpRequest``, to the same trigger
function Azure would call (list, status, approve, abort), under one lock with the driver.

The caller is the *local operator*: a principal holding every app role (Rollout.Request, Rollout.Approve,
Rollout.Operate), presented to the functions as App Service authentication would present a signed-in user;
four eyes are off (one person may request and approve). Only 127.0.0.1 is bound: nobody else can reach it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from . import bootstrap
from .adapters.local_orchestrations import LocalOrchestrations
from .adapters.simulator.adapters import SIM_EPOCH, to_datetime, to_minute
from .adapters.simulator.scenario import Scenario
from .adapters.simulator.world import FleetWorld
from .control.auth import AUTH_MODE_SETTING
from .control.roles import EVERY_ROLE, principal_header
from .domain.request import instance_id_for
from .orchestration.rollout import ROLLOUT
from .runtime.local_durable import LocalDurableRunner, indexed_functions
from .simulation import rollout_request

LOCAL_OPERATOR = "local-operator"
# What the host hands a function for its durable client binding; the installed local Orchestrations is used.
_CLIENT = json.dumps({"taskHubName": "LocalHub", "creationUrls": {}, "managementUrls": {},
                      "rpcBaseUrl": "http://127.0.0.1:9/runtime/webhooks/durabletask/"})
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/api/rollouts/?$"), "list_rollouts_http"),
    ("GET", re.compile(r"^/api/rollouts/(?P<rollout_id>[^/]+)/?$"), "rollout_status_http"),
    ("POST", re.compile(r"^/api/rollouts/(?P<rollout_id>[^/]+)/approve/?$"), "approve_rollout_http"),
    ("POST", re.compile(r"^/api/rollouts/(?P<rollout_id>[^/]+)/abort/?$"), "abort_rollout_http"),
]


class LocalRolloutServer:
    """A simulated rollout and the HTTP routes of the function app over it."""

    def __init__(self, scenario: Scenario, *, seed: int | None = None, speed: float = 60.0, port: int = 7071,
                 approval: bool = False, on_status: Callable[[str, Any], None] | None = None) -> None:
        import function_app  # the real app: its blueprints, orchestrators, activities and HTTP functions

        if speed < 0:
            raise ValueError(f"--speed must be 0 or more simulated seconds per wall second (got {speed})")
        self.speed = speed
        self.world = FleetWorld(scenario, seed=seed)
        self.services = bootstrap.simulator_services(self.world)
        self.lock = threading.RLock()
        self._functions = {f.get_function_name(): f.get_user_function() for f in indexed_functions(function_app.app)}

        def set_clock(t: Any) -> None:
            self.world.clock.now = to_minute(t)

        self.runner = LocalDurableRunner(function_app.app, start=SIM_EPOCH, set_clock=set_clock,
                                         read_clock=lambda: to_datetime(self.world.clock.now), on_status=on_status)
        bootstrap.install(self.services)
        bootstrap.install_orchestrations(LocalOrchestrations(self.runner))
        self.rollout_id = f"{scenario.change.id}-s{self.world.seed}"
        request = rollout_request(scenario, self.rollout_id)
        request["policy"]["four_eyes"] = False  # the local operator may request and approve
        if approval:
            request["policy"]["approval_required"] = True
        # the local operator is presented as App Service Authentication presents a signed-in user
        self._auth_mode = os.environ.get(AUTH_MODE_SETTING)
        os.environ[AUTH_MODE_SETTING] = "app-service"
        self.runner.start_new(ROLLOUT, instance_id_for(self.rollout_id), request)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.httpd.daemon_threads = True
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/api"

    @property
    def detail_url(self) -> str:
        return f"{self.base_url}/rollouts/{self.rollout_id}"

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        """Serve in a background thread; drive the rollout in another when ``speed`` > 0."""
        serve = threading.Thread(target=self.httpd.serve_forever, name="serve", daemon=True)
        serve.start()
        self._threads.append(serve)
        if self.speed > 0:
            drive = threading.Thread(target=self._drive, name="drive", daemon=True)
            drive.start()
            self._threads.append(drive)

    def _drive(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            target = SIM_EPOCH + timedelta(seconds=self.speed * (time.monotonic() - t0))
            with self.lock:
                self.runner.run(until=target, stop=self._stop.is_set)  # Ctrl-C stops between turns
                self.runner.idle_until(target)
            self._stop.wait(0.05)

    def phase(self) -> str | None:
        inst = self.runner.instances.get(instance_id_for(self.rollout_id))
        cs = inst.custom_status if inst else None
        return cs.get("phase") if isinstance(cs, dict) else None

    def runtime_status(self) -> str | None:
        inst = self.runner.instances.get(instance_id_for(self.rollout_id))
        return inst.status if inst else None

    def step_until(self, *phases: str) -> str | None:
        """Deliver events until the rollout reaches one of ``phases`` or nothing is left (speed 0: tests)."""
        with self.lock:
            self.runner.run(stop=lambda: self.phase() in phases)
            return self.phase()

    def close(self) -> None:
        self._stop.set()
        if self._auth_mode is None:
            os.environ.pop(AUTH_MODE_SETTING, None)
        else:
            os.environ[AUTH_MODE_SETTING] = self._auth_mode
        self.httpd.shutdown()
        self.httpd.server_close()
        # the drive stops between turns: let the turn in flight end (a busy machine can take a while), since a
        # daemon thread still inside native code when the interpreter exits aborts it ("exception not rethrown")
        for t in self._threads:
            t.join(timeout=120)
        bootstrap.install(None)
        bootstrap.install_orchestrations(None)

    # ------------------------------------------------------------------ requests
    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str],
                                                                                            bytes]:
        """One HTTP request, through the function app's own trigger function."""
        parts = urlsplit(target)
        for verb, pattern, name in _ROUTES:
            m = pattern.match(parts.path)
            if m is None:
                continue
            if verb != method:
                return _plain(405, {"reason": f"{method} is not allowed on {parts.path}; use {verb}"})
            req = func.HttpRequest(method=method, url=f"{self.base_url.removesuffix('/api')}{target}", body=body,
                                   params=dict(parse_qsl(parts.query)), route_params=m.groupdict(),
                                   headers={**headers, "x-ms-client-principal-name": LOCAL_OPERATOR,
                                            "x-ms-client-principal": principal_header(LOCAL_OPERATOR, EVERY_ROLE)})
            with self.lock:
                resp: func.HttpResponse = asyncio.run(self._functions[name](req, client=_CLIENT))
            out = dict(resp.headers)
            out["Content-Type"] = f"{resp.mimetype}; charset={resp.charset}"
            return resp.status_code, out, resp.get_body()
        return _plain(404, {"reason": f"no route {parts.path}; try /api/rollouts or /api/rollouts/<id>"})


def _plain(status: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(body).encode()


def _handler(server: LocalRolloutServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                status, headers, payload = server.handle(method, self.path, dict(self.headers.items()), body)
            except Exception as exc:  # a bug must show as a 500 with its reason, not a dropped connection
                status, headers, payload = _plain(500, {"reason": f"{type(exc).__name__}: {exc}"})
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() not in ("content-length", "connection"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def serve_until_interrupted(scenario: Scenario, *, seed: int | None, port: int, speed: float, approval: bool,
                            on_status: Callable[[str, Any], None] | None, echo: Callable[[str], None]) -> None:
    """What ``simulate --serve`` does: the detail URL first on stdout, then serve until Ctrl-C."""
    import sys

    # Ctrl-C (and a TERM) stop it even when it was started with SIGINT ignored, as a background job's children are
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server = LocalRolloutServer(scenario, seed=seed, speed=speed, port=port, approval=approval,
                                on_status=on_status)
    sys.stdout.write(server.detail_url + "\n")
    sys.stdout.flush()
    echo(f"serving {server.base_url}/rollouts as {LOCAL_OPERATOR} (every role, four eyes off) at {speed:g} "
         "simulated s per wall s; Ctrl-C stops")
    server.start()
    ended = False
    try:
        while True:
            time.sleep(0.5)
            if not ended and server.runtime_status() in ("Completed", "Failed", "Terminated"):
                ended = True
                echo(f"rollout ended ({server.runtime_status()}, phase {server.phase()}); still serving "
                     f"{server.detail_url}")
    except KeyboardInterrupt:
        echo("stopped")
    finally:
        server.close()
