"""Scale-set leases in real Table storage (Azurite): exclusive, all-or-nothing, released by their holder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from azure.data.tables import TableServiceClient

from shared.adapters.azure.leases import TableLeases

NOW = datetime(2026, 11, 27, tzinfo=UTC)
WEB = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/Web"
API = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/api"


@pytest.fixture
def leases(azurite_tables: str) -> Iterator[TableLeases]:
    name = f"leases{uuid.uuid4().hex[:10]}"
    yield TableLeases.from_connection_string(azurite_tables, name)
    TableServiceClient.from_connection_string(azurite_tables).delete_table(name)


def test_a_scale_set_held_by_one_rollout_is_refused_to_another(leases: TableLeases) -> None:
    assert leases.acquire([WEB], "rollout-a", now=NOW).acquired
    assert leases.acquire([WEB.lower()], "rollout-a", now=NOW).acquired  # its own again: fine
    refused = leases.acquire([WEB], "rollout-b", now=NOW)
    assert not refused.acquired and refused.conflicts[0].holder == "rollout-a"


def test_acquiring_several_is_all_or_nothing(leases: TableLeases) -> None:
    assert leases.acquire([WEB], "rollout-a", now=NOW).acquired
    assert not leases.acquire([API, WEB], "rollout-b", now=NOW).acquired
    assert leases.holders([API]) == {}  # the API row it took first was undone
    assert set(leases.holders([WEB, API])) == {WEB.lower()}


def test_only_the_holder_releases_and_then_others_may_take_it(leases: TableLeases) -> None:
    leases.acquire([WEB, API], "rollout-a", now=NOW)
    assert leases.release("rollout-b") == 0
    assert leases.release("rollout-a", [API]) == 1
    assert leases.acquire([API], "rollout-b", now=NOW).acquired
    assert leases.release("rollout-a") == 1
    assert leases.acquire([WEB], "rollout-b", now=NOW).acquired
