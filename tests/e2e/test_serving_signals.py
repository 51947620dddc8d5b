"""Serving commands stop on Ctrl-C even when started with SIGINT ignored, as a background job's children are (CI,
``nohup ... &``): Python installs no KeyboardInterrupt handler for a signal ignored at start-up."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
EXE = str(Path(sys.executable).with_name("shadow-rollout"))


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("args", [
    ["standin", "--scenario", "tests/scenarios/good-change.yaml", "--port", "0"],
    ["simulate", "--scenario", "tests/scenarios/good-change.yaml", "--serve", "--port", "0"],
])
def test_a_serving_command_started_with_sigint_ignored_still_stops_on_ctrl_c(args: list[str]) -> None:
    proc = subprocess.Popen([EXE, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ignore_sigint)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip(), "no first line"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode in (0, -signal.SIGINT, 130) and "Traceback" not in err, err[-2000:]
