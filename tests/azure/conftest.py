"""Fixtures for the Azure adapters: the Azure-shaped stand-in over a small simulated fleet, and Azurite."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def azurite_tables() -> Iterator[str]:
    """A real Azurite Table service on a free port; yields its connection string."""
    exe = ROOT / "node_modules" / ".bin" / "azurite-table"
    if not exe.exists():
        if os.environ.get("CI"):
            pytest.fail("Azurite is not installed: `make test` runs `npm ci` first")
        pytest.skip("Azurite is not installed (run `npm ci`)")
    port = _free_port()
    workdir = ROOT / ".pytest_cache" / f"azurite-{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([str(exe), "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck",
                             "--tableHost", "127.0.0.1", "--tablePort", str(port), "--silent"],
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
        yield (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
               f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
