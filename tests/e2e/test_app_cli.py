"""``shadow-rollout status|watch|approve|abort|list --app`` against ``simulate --serve`` (the function app's own
HTTP functions on 127.0.0.1), as an operator would use them; and the commands' one-line errors."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .test_cli import cli, exe


@pytest.fixture
def served(scenario_path: Callable[[str], Path]) -> Iterator[tuple[str, str]]:
    """``simulate --serve`` at 300 simulated s per wall s (the 240-minute approval gate lasts 48 s)."""
    proc = subprocess.Popen([exe(), "simulate", "--scenario", str(scenario_path("latent-crash")), "--serve",
                             "--port", "0", "--speed", "300", "--approval"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        m = re.fullmatch(r"(http://127\.0\.0\.1:\d+)/api/rollouts/(latent-1-s11)", url)
        assert m, f"first line is not the rollout's URL: {url!r}"
        yield m.group(1), m.group(2)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert "stopped" in err and "Traceback" not in err, err


def status(app: str, rid: str) -> dict[str, Any]:
    p = cli("status", rid, "--app", app, "--json")
    assert p.returncode == 0, p.stderr
    body: dict[str, Any] = json.loads(p.stdout)
    return body


def test_approve_at_the_gate_then_watch_until_production_is_done(served: tuple[str, str]) -> None:
    app, rid = served
    deadline = time.monotonic() + 120
    while (body := status(app, rid))["phase"] != "awaiting_approval":
        assert body["runtime_status"] in ("Pending", "Running"), body["phase"]
        assert time.monotonic() < deadline, f"never reached the gate (at {body['phase']})"
        time.sleep(0.3)
    assert body["custom_status"]["approval"]["timeout_at"]
    listed = cli("list", "--app", app, "--json")
    assert listed.returncode == 0 and [r["rollout_id"] for r in json.loads(listed.stdout)["rollouts"]] == [rid]
    p = cli("approve", rid, "--app", app, "--reason", "bake clean")
    assert p.returncode == 0 and "approve sent" in p.stdout, p.stderr
    p = cli("watch", rid, "--app", app, "--interval", "0.5", "--timeout-minutes", "5")
    assert p.returncode == 0 and "production done" in p.stdout, (p.stdout, p.stderr)
    body = status(app, rid)
    assert body["phase"] in ("watch", "done") and body["custom_status"]["waves_done"] == 4
    assert body["custom_status"]["approval"]["outcome"] == "approved"
    assert body["custom_status"]["approval"]["reason"].startswith("approved by local-operator")
    again = cli("approve", rid, "--app", app)
    assert again.returncode == 1 and "409" in again.stderr and "not awaiting approval" in again.stderr


def test_an_unreachable_app_is_one_line_not_a_traceback() -> None:
    p = cli("status", "r1", "--app", "http://127.0.0.1:9")
    assert p.returncode == 1 and "cannot reach http://127.0.0.1:9/api/rollouts/r1" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p = cli("list", "--app", "ftp://example")
    assert p.returncode == 2 and "--app must be an http(s) URL" in p.stderr


def test_publish_to_an_unreachable_namespace_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    req = tmp_path / "request.yaml"
    req.write_text("rollout_id: t1\ntargets: [/subscriptions/00000000-0000-4000-8000-000000000000/resourceGroups/"
                   "rg/providers/Microsoft.Compute/virtualMachineScaleSets/web]\n"
                   "change: {change_id: c1, kind: run-command, payload: {script: echo}}\n")
    p = cli("publish", str(req), "--namespace", "127.0.0.1")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith("error: Service Bus 127.0.0.1:") and len(p.stderr.strip().splitlines()) <= 2
