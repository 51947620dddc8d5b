"""No activity outlives its function: every activity's simulated run stays within host.json's functionTimeout.

host.json sets ``functionTimeout`` to the Flex Consumption default, 30 minutes (Azure Functions "Function app
timeout duration": default 30, maximum unbounded). An activity that waited longer on a slow Azure operation
would be killed by the host instead of recording a time-out, so the simulated runs are checked against it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.adapters.simulator.scenario import load_scenario
from shared.simulation import simulate

ROOT = Path(__file__).resolve().parents[2]


def _function_timeout_seconds() -> float:
    h, m, s = json.loads((ROOT / "host.json").read_text())["functionTimeout"].split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_host_json_function_timeout_is_the_flex_consumption_default() -> None:
    assert _function_timeout_seconds() == 30 * 60


@pytest.mark.parametrize("name", ["tests/scenarios/good-change.yaml", "tests/scenarios/fleet-wide-crash.yaml",
                                  "bench/scenarios/faults-arm-storm.yaml"])
def test_every_activity_returns_within_the_function_timeout(name: str) -> None:
    run = simulate(load_scenario(ROOT / name))
    longest = run.stats.longest_activity
    assert longest, "no activity ran"
    worst = max(longest, key=lambda k: longest[k])
    assert longest[worst] <= _function_timeout_seconds(), f"{worst} ran {longest[worst]:.0f} s"
