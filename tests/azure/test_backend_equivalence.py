"""``--backend azure-sdk`` (the Azure SDK adapters over HTTP against the stand-in) ends exactly as
``--backend sim`` for the same scenario and seed: identical outcome JSON without faults; identical
``outcome`` and ``vms`` with faults (the contract, §2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.adapters.simulator.scenario import load_scenario
from shared.adapters.simulator.standin.backend import simulate_azure_sdk
from shared.simulation import simulate

from ..conftest import SCENARIOS

FAULTS = Path(__file__).parent / "scenarios" / "arm-faults.yaml"


@pytest.mark.parametrize("name", ["good-change", "latent-crash", "fleet-wide-crash"])
def test_azure_sdk_backend_gives_the_same_outcome_json_as_the_simulator(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    sim = simulate(scenario).outcome
    azure = simulate_azure_sdk(scenario)
    assert json.dumps(azure.outcome, sort_keys=True) == json.dumps(sim, sort_keys=True)
    assert azure.services.fleet.__class__.__name__ == "AzureFleet"  # it really went through the Azure adapters


def test_with_arm_faults_outcome_and_vms_are_the_same() -> None:
    scenario = load_scenario(FAULTS)
    sim = simulate(scenario).outcome
    azure = simulate_azure_sdk(scenario).outcome
    assert (azure["outcome"], azure["vms"]) == (sim["outcome"], sim["vms"])
    # the faults did not make the run trivial: the latent crashes made the watch withdraw the change
    assert sim["outcome"] == "halted_in_production" and sim["vms"]["rolled_back"] > 0


def test_simulate_command_runs_the_azure_sdk_backend(tmp_path: Path) -> None:
    """The installed command, on a fourth scenario (a stratum skipped before production), with its request log."""
    exe = shutil.which("shadow-rollout", path=str(Path(sys.executable).parent))
    assert exe
    path = SCENARIOS / "crash-one-sku.yaml"
    log = tmp_path / "azure.jsonl"
    azure = subprocess.run([exe, "simulate", "--scenario", str(path), "--json", "--backend", "azure-sdk",
                            "--azure-log", str(log)], capture_output=True, text=True, timeout=600)
    assert azure.returncode == 0, azure.stderr
    assert azure.stdout == json.dumps(simulate(load_scenario(path)).outcome) + "\n"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    arm = [r for r in records if r["path"].startswith("/subscriptions/")]
    assert arm and set(records[0]) == {"t", "method", "path", "api_version", "status", "principal", "throttled"}
    assert sum(r["throttled"] for r in arm) <= 0.01 * len(arm)
    assert all(r["status"] != 400 for r in records), "the stand-in refused an adapter request"
    bad = subprocess.run([exe, "simulate", "--backend", "azure"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "azure-sdk" in bad.stderr and "Traceback" not in bad.stderr
