"""Guest prerequisites: the pure check, and the shipped probe's line format that the data collection rule parses."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from shared.domain.guest import GUEST_KIT, MONITOR_AGENT, missing_prerequisites

ROOT = Path(__file__).resolve().parents[2]
WEB = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/web"
API = WEB.replace("/web", "/api")


def test_every_target_with_both_prerequisites_may_start() -> None:
    assert missing_prerequisites({WEB: frozenset({MONITOR_AGENT, GUEST_KIT, "CustomScript"}),
                                  API: frozenset({MONITOR_AGENT, GUEST_KIT})}) is None


def test_a_target_without_the_kit_refuses_naming_it_and_what_it_lacks() -> None:
    d = missing_prerequisites({WEB: frozenset({MONITOR_AGENT, GUEST_KIT}), API: frozenset({MONITOR_AGENT})})
    assert d is not None and d.kind == "refused"
    assert d.reason.startswith("guest prerequisites missing on 1 of 2 target scale sets: api lacks "
                               "shadow-rollout-guest.")
    assert "guest/install.sh" in d.reason and "Azure Monitor agent" not in d.reason
    assert d.data["lacking"] == {API: [GUEST_KIT]}


def test_a_target_without_anything_lacks_both() -> None:
    d = missing_prerequisites({WEB: frozenset()})
    assert d is not None and "web lacks AzureMonitorLinuxAgent and shadow-rollout-guest" in d.reason
    assert "AppHealthProbe_CL" in d.reason and "stress-ng" in d.reason


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def app() -> Iterator[str]:
    httpd = HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_shipped_probe_writes_the_line_the_collection_rule_parses(app: str, tmp_path: Path) -> None:
    for url in (f"{app}/health", f"{app}/broken", "http://127.0.0.1:9/health"):
        subprocess.run(["sh", str(ROOT / "guest" / "health-probe.sh")], check=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin", "PROBE_URL": url, "SHADOW_ROLLOUT_LOG_DIR": str(tmp_path)})
    (log,) = tmp_path.glob("health-probe-*.log")
    lines = log.read_text().splitlines()
    fields = [ln.split(",") for ln in lines]
    assert [f[1] for f in fields] == ["true", "false", "false"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", f[0]) for f in fields)
    # the rule's transformation reads the same positions, into the table the telemetry query reads
    bicep = (ROOT / "infra" / "modules" / "monitoring.bicep").read_text()
    assert ("TimeGenerated = todatetime(d[0]), Healthy_b = tobool(d[1]), Probe_s = tostring(d[2])" in bicep
            and "'/var/log/shadow-rollout/health-probe-*.log'" in bicep)
    assert "SHADOW_ROLLOUT_LOG_DIR:-/var/log/shadow-rollout" in (ROOT / "guest" / "health-probe.sh").read_text()
    assert subprocess.run(["sh", "-n", str(ROOT / "guest" / "install.sh")]).returncode == 0
