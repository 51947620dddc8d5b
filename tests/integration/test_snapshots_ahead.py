"""Production snapshots taken during the bake, through the real orchestrators on the local durable runner: the VMs
predicted at risk (and, when the policy asks, the first wave's) are snapshotted while the shadows bake, so that
``prepare`` and the waves find them taken, and a rollout that ends without changing a VM deletes them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from shared.adapters.simulator.scenario import parse_scenario
from shared.domain.decisions import VmRisk
from shared.domain.features import FeatureTable
from shared.domain.model import Stratum
from shared.ports import FailureModel
from shared.simulation import SimulationRun, simulate

Scenario = Callable[[str], Path]


def _run(path: Path, model: FailureModel | None = None, **policy: Any) -> SimulationRun:
    doc = yaml.safe_load(path.read_text())
    doc["policy"] = {**doc.get("policy", {}), **policy}
    return simulate(parse_scenario(doc), model=model)


class OneSkuAtRisk(FailureModel):
    """Predicts 0.3 (at risk: over snapshot_probability 0.1, under skip_probability) for one SKU's VMs, 0 else."""

    name = "one-sku-at-risk"

    def __init__(self, sku: str) -> None:
        self.sku = sku

    def predict(self, table: FeatureTable) -> list[VmRisk]:
        return [VmRisk(vm, key, 0.3 if Stratum.from_key(key).sku == self.sku else 0.0, "model")
                for vm, key in zip(table.vm_ids, table.stratum_keys, strict=True)]


def _first(run: SimulationRun, kind: str) -> dict[str, Any]:
    return next(d for d in run.outcome["decisions"] if d["kind"] == kind)


def _production_snapshots(run: SimulationRun) -> dict[int, list[tuple[float, str]]]:
    w = run.world
    return {i: s for i, s in w.snapshots.items() if i < w.n_production}


def test_the_vms_predicted_at_risk_are_snapshotted_during_the_bake_and_prepare_finds_them_taken(
        scenario_path: Scenario) -> None:
    run = _run(scenario_path("good-change"), model=OneSkuAtRisk("Standard_D8s_v5"))
    ahead, prepared = _first(run, "snapshot_ahead"), _first(run, "prepare")
    assert ahead["minute"] < _first(run, "bake_end")["minute"] <= prepared["minute"]
    items = run.services.store.get_items(run.rollout_id, "vm")
    risky = [k for k, v in items.items() if v["info"]["sku"] == "Standard_D8s_v5"]
    assert risky and sorted(k for k, v in items.items() if v.get("ahead")) == sorted(risky)
    assert f"{len(risky)} predicted at risk" in ahead["reason"] and "first wave" not in ahead["reason"]
    assert prepared["reason"].startswith(f"{len(risky)} at-risk VMs snapshotted ({len(risky)} during the bake)")
    snaps = _production_snapshots(run)
    assert all(len(snaps[run.world.index_of(vm)]) == 1 for vm in risky), "snapshotted again after the bake"
    assert all(t < prepared["minute"] for vm in risky for t, _ in snaps[run.world.index_of(vm)])
    # nobody else: a good change's other VMs are snapshotted by their waves, after the decision
    others = [run.world.index_of(k) for k in items if k not in risky]
    assert all(t >= prepared["minute"] for i in others for t, _ in snaps.get(i, []))


def test_the_first_wave_is_snapshotted_during_the_bake_and_not_again_by_its_wave(scenario_path: Scenario) -> None:
    run = _run(scenario_path("good-change"), first_wave_snapshots_during_bake=True)
    assert run.outcome["outcome"] == "completed"
    ahead, planned = _first(run, "snapshot_ahead"), _first(run, "plan_waves")
    assert ahead["minute"] < _first(run, "bake_end")["minute"]
    items = run.services.store.get_items(run.rollout_id, "vm")
    first_wave = [k for k, v in items.items() if v.get("wave") == 0]
    assert first_wave and all(items[k].get("ahead") for k in first_wave)
    snaps = _production_snapshots(run)
    for vm in first_wave:
        taken = snaps[run.world.index_of(vm)]
        assert len(taken) == 1, f"{vm} was snapshotted again by its wave"
        assert taken[0][0] < planned["minute"], f"{vm}'s snapshot was not ready when production was planned"
    chosen = [k for k, v in items.items() if v.get("ahead")]
    assert len(chosen) == len(first_wave) < len(items)  # a good change: nothing at risk, only the first wave
    assert run.outcome["leaks"]["snapshots"] == 0


def test_a_rollout_halted_before_production_deletes_the_snapshots_it_took_during_the_bake(
        scenario_path: Scenario) -> None:
    run = _run(scenario_path("good-change"), approval_required=True, approval_timeout_minutes=5,
               on_approval_timeout="halt", first_wave_snapshots_during_bake=True)
    o = run.outcome
    assert o["outcome"] == "halted_before_production"
    taken = _first(run, "snapshot_ahead")["reason"]
    gone = _first(run, "discard_snapshots")
    assert gone["minute"] > _first(run, "approval_timeout")["minute"]
    assert taken.split(": ")[1].split(" production VMs")[0] in gone["reason"]
    assert _production_snapshots(run) == {}
    assert o["leaks"] == {"shadows": 0, "leases": 0, "extra_instances": 0, "snapshots": 0}
    items = run.services.store.get_items(run.rollout_id, "vm")
    assert not any(v.get("snapshot") for v in items.values())


def test_with_snapshots_during_the_bake_off_production_is_snapshotted_only_after_the_decision(
        scenario_path: Scenario) -> None:
    run = _run(scenario_path("good-change"), model=OneSkuAtRisk("Standard_D8s_v5"), snapshots_during_bake=False,
               first_wave_snapshots_during_bake=True)
    assert run.outcome["outcome"] == "completed"
    assert "snapshot_ahead" not in [d["kind"] for d in run.outcome["decisions"]]
    planned = _first(run, "plan_waves")["minute"]
    assert all(t >= planned for s in _production_snapshots(run).values() for t, _ in s)


def test_shadow_creation_begins_in_the_minute_the_targets_are_leased(scenario_path: Scenario) -> None:
    """Nothing waits between the lease and the shadows (the inventory and the claim take no simulated minute); no
    shadow is begun before the claim."""
    run = _run(scenario_path("good-change"))
    claimed = _first(run, "claimed")["minute"]
    assert _first(run, "inventory")["minute"] == claimed == 0.0
    begun = [run.world.shadow_created_at[r] for r in run.world.shadow_rows]
    assert begun and min(begun) >= claimed and min(begun) < claimed + 0.1
