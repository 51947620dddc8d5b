"""The typed rollout state: rows keep the field names readers use, payloads are checked on entry, keys sort."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.adapters.memory_store import InMemoryRolloutStore
from shared.domain.model import ApplyResult, ApplyStatus, Config, SnapshotInfo, VmInfo
from shared.domain.policy import RolloutPolicy
from shared.domain.request import parse_request
from shared.orchestration.activities import ACTIVITIES
from shared.orchestration.activities.shadows import regular_quota
from shared.orchestration.chunks import chunk_count
from shared.orchestration.repository import RolloutRepository, Step, decision_key
from shared.orchestration.state import Rollback, RollbackState, RolloutPhase, RolloutRecord, VmAction, VmItem

VM = ("/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/"
      "virtualMachineScaleSets/api/virtualMachines/7")
T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _record() -> RolloutRecord:
    req = parse_request({"rollout_id": "r1", "targets": [VM.rsplit("/virtualMachines", 1)[0]],
                         "change": {"change_id": "c1", "payload": {"script": "echo"}}})
    return RolloutRecord(rollout_id="r1", request=req, policy=RolloutPolicy(), started_at=T0, vm_count=1, strata=1,
                         shadow_chunks=1)


def test_a_vm_row_round_trips_through_the_store_with_the_field_names_readers_use() -> None:
    store = InMemoryRolloutStore()
    repo = RolloutRepository(store, "r1")
    info = VmInfo(VM, "api", "Standard_D2s_v5", "img", "1", "Uniform")
    repo.put_vms({VM: VmItem(info=info, stratum=info.stratum.key)})
    raw = store.get_items("r1", "vm")[VM]
    assert "apply" not in raw and "rollback" not in raw and raw["config"] == "old"  # absent until it happens
    apply = ApplyResult(VM, ApplyStatus.FAILED, 1, 12.0, "exit 1")
    repo.update_vms([VM], lambda _, cur: cur.model_copy(update={
        "apply": apply, "snapshot": SnapshotInfo(VM, "snap-1", "disk-1"), "config": Config.NEW,
        "actions": [*cur.actions, VmAction.APPLY],
        "rollback": Rollback(batch="b1", state=RollbackState.QUEUED, reason="apply failed")}))
    raw = store.get_items("r1", "vm")[VM]
    assert raw["apply"] == apply.to_dict() and raw["rollback"]["state"] == "queued" and raw["actions"] == ["apply"]
    item = repo.vms()[VM]
    assert item.apply == apply and item.info == info and item.rollback is not None


def test_vm_rows_read_again_show_every_write_since_and_the_shared_rows_cannot_be_changed_in_place() -> None:
    """Unchanged rows are reused between reads (same ETag); a write by anyone (another repository, the store
    itself) is seen by the next read, another rollout's rows never are, and a read row is frozen."""
    store = InMemoryRolloutStore()
    info = VmInfo(VM, "api", "Standard_D2s_v5", "img", "1", "Uniform")
    RolloutRepository(store, "r1").put_vms({VM: VmItem(info=info, stratum=info.stratum.key)})
    RolloutRepository(store, "r2").put_vms({VM: VmItem(info=info, stratum=info.stratum.key, excluded="r2's")})
    reader = RolloutRepository(store, "r1")
    first = reader.vms()[VM]
    assert reader.vms()[VM] is first and first.excluded is None  # not validated again while unchanged
    RolloutRepository(store, "r1").update_vms([VM], lambda _, cur: cur.model_copy(update={"config": Config.NEW}))
    assert reader.vms()[VM].config is Config.NEW
    store.put_items("r1", "vm", {VM: {"excluded": "written as a plain row"}})
    assert reader.vms()[VM].excluded == "written as a plain row" and reader.vms()[VM].config is Config.NEW
    assert RolloutRepository(store, "r2").vms()[VM].excluded == "r2's"
    with pytest.raises(ValidationError):
        first.config = Config.OLD  # type: ignore[misc]


def test_the_record_refuses_a_field_it_does_not_have_and_a_value_of_the_wrong_type() -> None:
    record = _record()
    with pytest.raises(ValidationError):
        record.phase = "baking"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="shadow_apply_done_0"):
        setattr(record, "shadow_apply_done_0", T0)  # noqa: B010 - the old per-chunk field: now a row of its own
    record.phase = RolloutPhase.BAKE
    assert RolloutRecord.model_validate(record.json_dict()) == record


def test_an_activity_payload_is_checked_on_entry_and_names_what_is_missing() -> None:
    with pytest.raises(ValidationError, match="wave"):
        ACTIVITIES["apply_wave"](None, {"rollout_id": "r1", "chunk": 0})  # type: ignore[arg-type]


def test_decision_keys_sort_by_time_then_lifecycle_step_then_scope_and_index() -> None:
    keys = [decision_key(2.0, Step.START_ROLLOUT, "", 0), decision_key(0.5, Step.FINISH, "", 1),
            decision_key(0.5, Step.FINISH, "", 0), decision_key(0.5, Step.CLAIM_TARGETS, "", 0),
            decision_key(10.0, Step.APPLY_WAVE, "w00c01", 0), decision_key(10.0, Step.APPLY_WAVE, "w00c00", 3)]
    assert sorted(keys) == [keys[3], keys[2], keys[1], keys[0], keys[5], keys[4]] and len(set(keys)) == len(keys)


@pytest.mark.parametrize("plans", [10, 120, 800])
@pytest.mark.parametrize("cap", [0, 3, 40])
def test_parallel_create_shadows_chunks_share_the_regular_price_cap_without_exceeding_it(plans: int, cap: int) -> None:
    shares = [regular_quota(cap, plans, c) for c in range(chunk_count(plans))]
    assert sum(shares) == cap and max(shares) - min(shares) <= 1
