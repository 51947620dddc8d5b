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


def test_a_read_with_nothing_written_since_hands_out_the_same_models_and_a_write_is_seen() -> None:
    from datetime import UTC, datetime

    from shared.adapters.memory_store import InMemoryRolloutStore
    from shared.domain.model import VmInfo

    store = InMemoryRolloutStore()
    repo = RolloutRepository(store, "r-1")
    repo.put_vms({f"vm-{i}": VmItem(info=VmInfo(f"vm-{i}", "web", "Standard_D2s_v5", "ubuntu", "1"), stratum="s")
                  for i in range(3)})
    first = repo.vms()
    again = repo.vms()
    assert again == first and all(again[k] is first[k] for k in first) and again is not first
    generation, rows = store.rows_since("r-1", "vm", None)
    assert rows is not None and store.rows_since("r-1", "vm", generation) == (generation, None)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    repo.update_vms(["vm-1"], lambda _, cur: cur.model_copy(update={"applied_at": at}))
    assert store.rows_since("r-1", "vm", generation)[1] is not None
    after = repo.vms()
    assert after["vm-1"].applied_at == at and after["vm-0"] is first["vm-0"]
    assert RolloutRepository(store, "r-2").vms() == {}, "another rollout's rows are its own"
