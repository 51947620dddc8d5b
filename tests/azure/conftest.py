"""Fixtures for the Azure adapters: the Azure-shaped stand-in over a small simulated fleet, and Azurite."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.azure.clients import AzureSettings
from shared.adapters.azure.compute import AzureDiskSnapshots, AzureFleet, AzureShadowLoad, AzureShadowPool
from shared.adapters.azure.telemetry import AzureTelemetry
from shared.adapters.simulator.scenario import parse_scenario
from shared.adapters.simulator.standin import AzureStandIn
from shared.adapters.simulator.standin.backend import standin_settings
from shared.adapters.simulator.world import FleetWorld, vmss_resource_id

ROOT = Path(__file__).resolve().parents[2]
SMALL_FLEET: dict[str, Any] = {
    "name": "wire", "seed": 1,
    "fleet": {"scale_sets": [
        {"name": "web", "capacity": 4, "zones": ["1", "2"], "skus": {"Standard_D2s_v5": 1}},
        {"name": "api", "orchestration": "Uniform", "capacity": 3, "zones": ["1"], "skus": {"Standard_D4s_v5": 1}},
    ]},
    "change": {"id": "chg-1", "payload": {"script": "echo change"}},
}
WEB = vmss_resource_id("web")
API = vmss_resource_id("api")


class Azure:
    """The adapters aimed at one stand-in, with the stand-in and its world at hand."""

    def __init__(self, standin: AzureStandIn) -> None:
        self.standin = standin
        self.world = standin.world
        self.settings: AzureSettings = standin_settings(standin)
        self.fleet = AzureFleet(self.settings)
        self.shadows = AzureShadowPool(self.settings)
        self.load = AzureShadowLoad(self.settings)
        self.snapshots = AzureDiskSnapshots(self.settings)
        self.telemetry = AzureTelemetry(self.settings)

    def calls(self, method: str, fragment: str) -> int:
        return sum(1 for m, p in self.standin.requests if m == method and fragment.lower() in p.lower())

    def body(self, method: str, fragment: str) -> Any:
        return next(b for m, p, b in reversed(self.standin.bodies) if m == method and fragment.lower() in p.lower())


def make_world(overrides: dict[str, Any] | None = None) -> FleetWorld:
    data = {**SMALL_FLEET, **(overrides or {})}
    return FleetWorld(parse_scenario(data))


@pytest.fixture
def azure() -> Iterator[Azure]:
    with AzureStandIn(make_world()) as standin:
        yield Azure(standin)


# ---------------------------------------------------------------------------------------------- Azurite
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's well-known development account key (public, documented; only for the local emulator)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _azurite(service: str) -> Iterator[int]:
    """A real Azurite ``service`` (``table``, ``blob``) on a free port; yields the port."""
    exe = ROOT / "node_modules" / ".bin" / f"azurite-{service}"
    if not exe.exists():
        if os.environ.get("CI"):
            pytest.fail("Azurite is not installed: `make test` runs `npm ci` first")
        pytest.skip("Azurite is not installed (run `npm ci`)")
    port = _free_port()
    workdir = ROOT / ".pytest_cache" / f"azurite-{service}-{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([str(exe), "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck",
                             f"--{service}Host", "127.0.0.1", f"--{service}Port", str(port), "--silent"],
                            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    pytest.fail(f"Azurite did not start on port {port}: {err[-500:]}")
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def azurite_tables() -> Iterator[str]:
    """A real Azurite Table service on a free port; yields its connection string."""
    with _azurite("table") as port:
        yield (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
               f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")


@pytest.fixture(scope="session")
def azurite_blobs() -> Iterator[str]:
    """A real Azurite Blob service on a free port; yields its connection string."""
    with _azurite("blob") as port:
        yield (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
               f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")


class FaultProxy:
    """A reverse proxy on a free port in front of a real service (Azurite), answering scripted faults first.

    Azurite cannot be told to answer 429 or 503; this puts those answers on the wire in front of it, so the
    Table store's retries and error mapping are exercised over HTTP too.
    """

    def __init__(self, upstream: str) -> None:
        import http.client
        import re
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        self.faults: list[tuple[str, str, int, bytes, dict[str, str], list[int]]] = []
        self.requests: list[tuple[str, str]] = []
        up = urlsplit(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests.append((self.command, self.path))
                for method, pattern, status, payload, headers, left in proxy.faults:
                    if left[0] > 0 and method == self.command and re.search(pattern, self.path):
                        left[0] -= 1
                        self.send_response(status)
                        for k, v in headers.items():
                            self.send_header(k, v)
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port or 80, timeout=30)
                conn.request(self.command, self.path, body=body or None,
                             headers={k: v for k, v in self.headers.items() if k.lower() != "connection"})
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_MERGE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def inject(self, method: str, pattern: str, status: int, payload: bytes = b"",
               headers: dict[str, str] | None = None, times: int = 1) -> None:
        self.faults.append((method, pattern, status, payload, headers or {}, [times]))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
