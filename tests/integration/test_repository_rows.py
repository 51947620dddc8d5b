"""The repository's parsed rows are the stored rows: the models it keeps by version, written or read, are what
validating the stored JSON gives, so no reader sees a model the store does not hold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shared.adapters.simulator.scenario import load_scenario
from shared.orchestration.repository import RolloutRepository
from shared.orchestration.state import VmItem
from shared.simulation import simulate


def test_every_vm_model_the_repository_keeps_equals_its_stored_row(scenario_path: Callable[[str], Path]) -> None:
    run = simulate(load_scenario(scenario_path("crash-one-sku")))
    store = run.services.store
    repo = RolloutRepository(store, run.rollout_id)
    kept = repo.vms()
    stored = store.get_items(run.rollout_id, "vm")
    assert kept and set(kept) == set(stored)
    assert any(v.risk is not None for v in kept.values()), "the run must have updated rows after writing them"
    for key, row in stored.items():
        assert kept[key] == VmItem.model_validate(row), key
    assert repo.vms()[key] is kept[key], "an unchanged row is not validated again"
