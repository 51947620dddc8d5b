"""Production snapshots taken during the bake, through the real orchestrators on the local durable runner: the
first wave's VMs are snapshotted while the shadows bake (its own snapshot step then finds them taken), and a
rollout that ends without changing a VM deletes them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from shared.adapters.simulator.scenario import parse_scenario
from shared.simulation import SimulationRun, simulate

Scenario = Callable[[str], Path]


def _run(path: Path, **policy: Any) -> SimulationRun:
    doc = yaml.safe_load(path.read_text())
    doc["policy"] = {**doc.get("policy", {}), **policy}
    return simulate(parse_scenario(doc))


def _first(run: SimulationRun, kind: str) -> dict[str, Any]:
    return next(d for d in run.outcome["decisions"] if d["kind"] == kind)


def _production_snapshots(run: SimulationRun) -> dict[int, list[tuple[float, str]]]:
    w = run.world
    return {i: s for i, s in w.snapshots.items() if i < w.n_production}


def test_the_first_wave_is_snapshotted_during_the_bake_and_not_again_by_its_wave(scenario_path: Scenario) -> None:
    run = _run(scenario_path("good-change"))
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
               on_approval_timeout="halt")
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
    run = _run(scenario_path("good-change"), snapshots_during_bake=False)
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
