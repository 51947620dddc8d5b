"""A scale set near its instance maximum (100 in a single placement group: shared/domain/scale_set_limits.py)
has its VMs rolled back: capacity is borrowed only up to the maximum, the decision says so with the numbers, and
every changed VM is recovered, on the simulator and on the Azure SDK adapters against the stand-in alike (the
stand-in refuses a capacity above the maximum, as ARM does)."""

from __future__ import annotations

import json
from pathlib import Path

from shared.adapters.simulator.scenario import parse_scenario
from shared.adapters.simulator.standin.backend import simulate_azure_sdk
from shared.simulation import simulate

NEAR_MAXIMUM = {
    "name": "near-maximum", "seed": 3,
    "fleet": {"scale_sets": [{"name": "web", "orchestration": "Uniform", "single_placement_group": True,
                              "capacity": 98, "skus": {"Standard_D4s_v5": 1}}]},
    "change": {"id": "lat", "truth": {"effects": [{"mode": "latent_crash", "probability": 0.2,
                                                    "onset_minutes": 60}]}},
    "policy": {"production_watch_minutes": 240},
}


def test_rollbacks_in_a_scale_set_near_its_maximum_recover_every_vm_on_both_backends(tmp_path: Path) -> None:
    scenario = parse_scenario(NEAR_MAXIMUM)
    sim = simulate(scenario)
    log = tmp_path / "azure.jsonl"
    azure = simulate_azure_sdk(scenario, azure_log=log)
    for run in (sim, azure):
        vms = run.outcome["vms"]
        assert run.outcome["outcome"] == "halted_in_production"
        assert vms["rolled_back"] > 0 and vms["failed_unrecovered"] == 0 and vms["unknown_state"] == 0
        assert vms["rolled_back"] == vms["total"] - vms["never_touched"] - vms["on_new_config"]
        assert run.outcome["capacity"]["max_extra_instances"] == 2  # 98 + 2: the set's 100-instance maximum
        outs = [d["reason"] for d in run.services.store.decisions(run.rollout_id) if d["kind"] == "scale_out"]
        assert outs and all("at its 100-instance maximum (98 before the rollout + 2 borrowed)" in r for r in outs)
    assert json.dumps(azure.outcome, sort_keys=True) == json.dumps(sim.outcome, sort_keys=True)
    patches = [json.loads(line) for line in log.read_text().splitlines()]
    patches = [r for r in patches if r["method"] == "PATCH" and r["path"].endswith("virtualMachineScaleSets/web")]
    assert len(patches) == 2 and all(r["status"] < 400 for r in patches)  # borrowed up to 100, then given back
