"""No activity blocks on a long operation: every activity's simulated run stays well under a minute.

Long-running operations are begun by one activity and polled on durable timers (shared.orchestration.operations),
so no activity waits for Azure to finish a snapshot, an apply, a restore or a shadow, on the simulator's adapters
and on the Azure SDK adapters (which advance one step per poll). ``ACTIVITY_BOUND`` is the
bound chosen for that (45 s of simulated time: the slowest activities left are the shadows' deletion and the load
generator's start, about half a minute); host.json's ``functionTimeout`` stays the Flex Consumption default,
30 minutes (Azure Functions "Function app timeout duration": default 30, maximum unbounded), far above it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.adapters.simulator.scenario import load_scenario
from shared.orchestration.activities import ACTIVITIES
from shared.simulation import simulate

ROOT = Path(__file__).resolve().parents[2]
ACTIVITY_BOUND = 45.0
"""Seconds of simulated time any one run of an activity may take."""
LONG_STEPS = ("create_shadows", "apply_to_shadows", "prepare", "snapshot_wave", "apply_wave", "restore_vms")


def _function_timeout_seconds() -> float:
    h, m, s = json.loads((ROOT / "host.json").read_text())["functionTimeout"].split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_host_json_function_timeout_is_the_flex_consumption_default() -> None:
    assert _function_timeout_seconds() == 30 * 60
    assert ACTIVITY_BOUND < 60 < _function_timeout_seconds()


def test_every_long_step_is_begun_by_its_own_activity_and_polled() -> None:
    assert "operation_status" in ACTIVITIES
    assert all(f"begin_{step}" in ACTIVITIES and step in ACTIVITIES for step in LONG_STEPS)


SHADOWS = ("create_shadows", "apply_to_shadows")
WAVES = (*SHADOWS, "snapshot_wave", "apply_wave")


@pytest.mark.parametrize(("name", "steps"), [("tests/scenarios/good-change.yaml", WAVES),
                                             ("tests/scenarios/fleet-wide-crash.yaml", SHADOWS),
                                             ("bench/scenarios/faults-arm-storm.yaml", (*WAVES, "restore_vms")),
                                             ("bench/scenarios/crash-partial.yaml", (*WAVES, "restore_vms"))])
def test_every_activity_returns_well_within_a_minute(name: str, steps: tuple[str, ...]) -> None:
    run = simulate(load_scenario(ROOT / name))
    longest = run.stats.longest_activity
    assert {f"begin_{s}" for s in steps} | set(steps) <= set(longest), "a long step did not run"
    worst = max(longest, key=lambda k: longest[k])
    assert longest[worst] <= ACTIVITY_BOUND, f"{worst} ran {longest[worst]:.0f} s"


@pytest.mark.parametrize(("name", "steps"), [("tests/scenarios/good-change.yaml", WAVES),
                                             ("bench/scenarios/crash-partial.yaml", (*WAVES, "restore_vms"))])
def test_on_the_azure_sdk_backend_no_activity_waits_for_arm_either(name: str, steps: tuple[str, ...]) -> None:
    """Through the Azure SDK adapters against the stand-in (whose polls never move an operation along), each
    long step is begun and then advanced one step per poll: no activity waits for an ARM operation."""
    from shared.adapters.simulator.standin.backend import simulate_azure_sdk

    run = simulate_azure_sdk(load_scenario(ROOT / name))
    assert run.services.operations.__class__.__name__ == "AzureLongOperations"
    longest = run.stats.longest_activity
    assert {f"begin_{s}" for s in steps} | set(steps) <= set(longest), "a long step did not run"
    worst = max(longest, key=lambda k: longest[k])
    assert longest[worst] <= ACTIVITY_BOUND, f"{worst} ran {longest[worst]:.0f} s"
    assert max(longest[f"begin_{s}"] for s in steps) < 1.0  # a begin sends requests; it never waits


def test_docs_activity_table_names_every_activity() -> None:
    """docs/operations.md ("Safe to run twice") says for every activity how a second run finds the first's work."""
    doc = (ROOT / "docs" / "operations.md").read_text()
    table = doc.split("## Safe to run twice", 1)[1].split("\n#", 1)[0]
    missing = [name for name in ACTIVITIES if f"`{name}`" not in table]
    assert not missing, f"docs/operations.md's activity table lacks {missing}"
