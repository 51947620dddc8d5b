"""The Table-storage rollout store against a real Azurite, started by the test suite on a free port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from azure.data.tables import TableClient, TableServiceClient

from shared.adapters.azure.store import MAX_ENTITY_CHARS, MAX_STRING_CHARS, TableRolloutStore, escape_key, unescape_key
from shared.adapters.memory_store import InMemoryRolloutStore
from shared.domain.decisions import Decision
from shared.domain.errors import AzureOperationError, NotFound
from shared.domain.kinds import DecisionKind
from shared.orchestration.repository import RolloutRepository, Step

from .conftest import FaultProxy


@pytest.fixture
def store(azurite_tables: str) -> Iterator[TableRolloutStore]:
    name = "t" + uuid.uuid4().hex[:20]
    yield TableRolloutStore.from_connection_string(azurite_tables, name)
    TableServiceClient.from_connection_string(azurite_tables).delete_table(name)


VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/api/virtualMachines/7"


def test_rollout_record_merges_fields_like_the_in_memory_store(store: TableRolloutStore) -> None:
    mem = InMemoryRolloutStore()
    for s in (store, mem):
        assert s.get_rollout("r1") is None
        s.put_rollout("r1", {"state": "running", "policy": {"waves": [1, 2]}, "halted": False})
        s.put_rollout("r1", {"halted": True, "extra": {"a": 1.5}})
    assert store.get_rollout("r1") == mem.get_rollout("r1") == {
        "state": "running", "policy": {"waves": [1, 2]}, "halted": True, "extra": {"a": 1.5}}


def test_items_keep_resource_ids_as_keys_and_merge_per_item(store: TableRolloutStore) -> None:
    store.put_items("r1", "vm", {VM: {"config": "old", "actions": []}, "b": {"x": 1}})
    store.put_items("r1", "vm", {VM: {"config": "new", "actions": ["snapshot", "apply"]}})
    assert store.get_items("r1", "vm") == {VM: {"config": "new", "actions": ["snapshot", "apply"]}, "b": {"x": 1}}
    assert store.get_items("r1", "shadow") == {} and store.get_items("r2", "vm") == {}


def test_per_vm_features_and_outcomes_round_trip_as_training_history(store: TableRolloutStore) -> None:
    features = {"judge_phase": "Failed", "cpu_pct_effect": 0.1234, "error_count_p": 1e-9, "none": None}
    store.put_items("r1", "vm", {f"vm{i}": {"features": features, "risk": i / 10, "outcome": "rolled_back"}
                                 for i in range(150)})  # more than one entity-group transaction
    items = store.get_items("r1", "vm")
    assert len(items) == 150 and items["vm7"] == {"features": features, "risk": 0.7, "outcome": "rolled_back"}


def test_an_item_larger_than_a_property_or_an_entity_is_split_and_joined(store: TableRolloutStore) -> None:
    big = {"vm_ids": [f"{VM}-{i}" for i in range(8000)]}  # about 900 KB of JSON
    assert len(str(big)) > MAX_ENTITY_CHARS > MAX_STRING_CHARS
    store.put_items("r1", "wave", {"0": big})
    assert store.get_items("r1", "wave") == {"0": big}
    store.put_items("r1", "wave", {"0": {"vm_ids": ["one"]}})  # shrinks: the leftover rows are ignored
    assert store.get_items("r1", "wave") == {"0": {"vm_ids": ["one"]}}


def test_every_rollout_is_listed_for_retraining_once(store: TableRolloutStore) -> None:
    for rid in ("rel-1", "rel/2 odd#id", "rel-3"):
        store.put_rollout(rid, {"state": "completed"})
        store.put_items(rid, "vm", {"vm-a": {"features": {"x": 1.0}}})
    store.put_items("rel-1", "decision", {"0000000000.0|00|start_rollout||0000": {"kind": "proceed", "reason": "r"}})
    assert store.rollout_ids() == ["rel-1", "rel-3", "rel/2 odd#id"]


def test_decisions_are_ordered_by_time_then_step_whatever_order_they_were_written_in(
        store: TableRolloutStore) -> None:
    repo = RolloutRepository(store, "r1")
    repo.add_decisions(1.0, Step.CREATE_SHADOWS, "c01", 0, [Decision(DecisionKind.SHADOW_UNAVAILABLE, "b")])
    repo.add_decisions(1.0, Step.CREATE_SHADOWS, "c00", 0, [Decision(DecisionKind.SHADOW_UNAVAILABLE, "a")])
    repo.add_decisions(0.0, Step.CLAIM_TARGETS, "", 0, [Decision(DecisionKind.CLAIMED, "claimed")])
    repo.add_decisions(0.0, Step.START_ROLLOUT, "", 0, [Decision(DecisionKind.INVENTORY, "i"),
                                                        Decision(DecisionKind.PLAN_SHADOWS, "p")])
    assert [d.reason for d in repo.decisions()] == ["i", "p", "claimed", "a", "b"]


def test_snapshot_catalog_and_rollback_state_are_items_of_their_own_kind(store: TableRolloutStore) -> None:
    store.put_items("r1", "snapshot", {VM: {"snapshot_id": "/x/snapshots/pre-r1-api_7", "taken": "2026-01-05"}})
    store.put_items("r1", "rollback", {VM: {"state": "queued", "batch": "b1"}})
    store.put_items("r1", "rollback", {VM: {"state": "verified"}})
    assert store.get_items("r1", "rollback")[VM] == {"state": "verified", "batch": "b1"}
    assert store.get_items("r1", "snapshot")[VM]["snapshot_id"].endswith("pre-r1-api_7")


def test_keys_with_characters_tables_refuse_are_escaped_reversibly() -> None:
    for key in (VM, "a#b?c\\d%2F", "plain"):
        assert "/" not in escape_key(key) and unescape_key(escape_key(key)) == key


def test_a_missing_table_is_reported_as_not_found(azurite_tables: str) -> None:
    svc = TableServiceClient.from_connection_string(azurite_tables)
    store = TableRolloutStore(svc.get_table_client("nosuchtable"))
    with pytest.raises(NotFound):
        store.put_rollout("r1", {"a": 1})


def test_an_unreachable_table_service_is_a_transient_azure_error() -> None:
    conn = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
            "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;")
    store = TableRolloutStore(TableServiceClient.from_connection_string(conn, retry_total=0).get_table_client("t"))
    with pytest.raises(AzureOperationError):
        store.get_rollout("r1")


def test_a_whole_rollout_on_the_table_store_matches_the_in_memory_store(azurite_tables: str) -> None:
    from shared.adapters.simulator.scenario import load_scenario
    from shared.simulation import simulate

    from ..conftest import SCENARIOS

    name = "t" + uuid.uuid4().hex[:20]
    table = TableRolloutStore.from_connection_string(azurite_tables, name)
    sc = load_scenario(SCENARIOS / "crash-one-sku.yaml")

    def on_tables(s: object) -> object:
        s.store = table  # type: ignore[attr-defined]
        return s

    a = simulate(sc).outcome
    b = simulate(sc, adapt=on_tables).outcome  # type: ignore[arg-type]
    assert a == b
    TableServiceClient.from_connection_string(azurite_tables).delete_table(name)


@pytest.fixture
def proxied(azurite_tables: str) -> Iterator[tuple[TableRolloutStore, FaultProxy]]:
    """The store talking to Azurite through a proxy that can answer faults (retries without wall-time waits)."""
    import re

    from shared.adapters.azure.clients import VirtualTimeTransport

    port = int(re.search(r"127\.0\.0\.1:(\d+)", azurite_tables).group(1))  # type: ignore[union-attr]
    proxy = FaultProxy(f"http://127.0.0.1:{port}")
    conn = azurite_tables.replace(f"127.0.0.1:{port}", f"127.0.0.1:{proxy.port}")
    name = "t" + uuid.uuid4().hex[:20]
    # a TableClient of its own: one from get_table_client wraps the transport, whose sleep is then wall time
    client = TableClient.from_connection_string(conn, table_name=name, transport=VirtualTimeTransport(),
                                                retry_backoff_factor=0, retry_total=9, retry_status=9)
    store = TableRolloutStore(client, create=True)
    store.put_rollout("r1", {"state": "running"})
    yield store, proxy
    proxy.stop()
    TableServiceClient.from_connection_string(azurite_tables).delete_table(name)


BATCH = r"/\$batch"
QUERY = r"/t[0-9a-f]+\(\)"


@pytest.mark.parametrize(("method", "path"), [("POST", BATCH), ("GET", QUERY)])
@pytest.mark.parametrize(("status", "headers"), [(429, {"Retry-After": "20"}), (503, {}), (500, {})])
def test_throttling_and_transient_errors_are_retried_by_the_sdk(
        proxied: tuple[TableRolloutStore, FaultProxy], method: str, path: str, status: int,
        headers: dict[str, str]) -> None:
    store, proxy = proxied
    proxy.inject(method, path, status, b'{"odata.error":{"code":"ServerBusy","message":{"value":"busy"}}}', headers)
    store.put_items("r1", "vm", {VM: {"config": "new"}})
    assert store.get_items("r1", "vm") == {VM: {"config": "new"}}
    assert sum(1 for m, p in proxy.requests if m == method) >= 2


@pytest.mark.parametrize(("status", "code", "error"), [(409, "TableBeingDeleted", "Conflict"),
                                                     (404, "ResourceNotFound", "NotFound"),
                                                     (412, "UpdateConditionNotSatisfied", "StaleWrite")])
def test_conflict_not_found_and_a_stale_version_are_mapped(proxied: tuple[TableRolloutStore, FaultProxy],
                                                           status: int, code: str, error: str) -> None:
    store, proxy = proxied
    body = b'{"odata.error":{"code":"%s","message":{"value":"x"}}}' % code.encode()
    proxy.inject("POST", BATCH, status, body, {"Content-Type": "application/json"}, times=99)
    with pytest.raises(AzureOperationError) as info:
        store.put_items("r1", "vm", {VM: {"config": "new"}})
    assert type(info.value).__name__ == error


def test_a_malformed_answer_is_an_error_of_the_project(proxied: tuple[TableRolloutStore, FaultProxy]) -> None:
    store, proxy = proxied
    proxy.inject("GET", QUERY, 200, b"<html>gateway</html>", {"Content-Type": "application/json"}, times=9)
    with pytest.raises(AzureOperationError):
        store.get_items("r1", "vm")
