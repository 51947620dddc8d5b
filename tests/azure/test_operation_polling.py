"""Begin an ARM operation in one activity and poll it once per activity later (shared.adapters.azure.operations),
through the SDK's own continuation tokens, against the stand-in answering as ARM does: the begin sends only the
initial request; a poll sends exactly one status request and comes back with ARM's ``Retry-After``, without
waiting; a terminal poll returns the resource; polling one operation faster than Compute's ``GetOperation``
policy allows is answered 429 with ``Retry-After``."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from shared.adapters.azure.compute import AzureDiskSnapshots, _snapshot
from shared.adapters.azure.limits import COMPUTE_POLICIES
from shared.adapters.azure.operations import begin, poll
from shared.adapters.simulator.scenario import parse_scenario
from shared.adapters.simulator.standin import AzureStandIn
from shared.adapters.simulator.standin.backend import standin_settings
from shared.adapters.simulator.world import FLEET_RG, FleetWorld
from shared.domain.operations import OperationState

from .conftest import SMALL_FLEET


@pytest.fixture
def standin() -> AzureStandIn:
    """Standing alone (its clock on the wall clock), as ARM: a poll never moves the operation along."""
    s = AzureStandIn(FleetWorld(parse_scenario(SMALL_FLEET))).start_in_process()
    s.serve_realtime(speed=1.0)
    return s


def _begin_snapshot(standin: AzureStandIn) -> tuple[Any, str]:
    world = standin.world
    client = AzureDiskSnapshots(standin_settings(standin)).client
    token = begin(client.snapshots.begin_create_or_update, FLEET_RG, "pre-r1-web-0",
                  _snapshot(world.region, world.vm_info(0).os_disk_id, "r1", world.ids[0]))
    return client, token


def _operation_requests(standin: AzureStandIn) -> list[dict[str, Any]]:
    return [r for r in standin.request_log if "/operations/" in r["path"]]


def test_a_begun_operation_is_polled_once_per_call_from_its_token(standin: AzureStandIn) -> None:
    client, token = _begin_snapshot(standin)
    assert _operation_requests(standin) == []  # the begin made no status request
    state = json.loads(base64.b64decode(token))["data"]  # JSON, nothing pickled: safe to keep between activities
    assert state["response"]["status_code"] in (200, 201)
    assert "azure-asyncoperation" in {k.lower() for k in state["response"]["headers"]}

    clock = standin.world.clock.now
    first = poll(client.snapshots.begin_create_or_update, token, FLEET_RG, "pre-r1-web-0", None)
    assert first.state is OperationState.RUNNING
    assert 1 <= first.retry_after_seconds <= 120  # the stand-in's Retry-After: the time the snapshot has left
    assert len(_operation_requests(standin)) == 1
    assert standin.world.clock.now - clock < 1.0  # the poll did not wait for the operation (clock in minutes)

    standin.world.clock.advance_to(clock + 10)
    done = poll(client.snapshots.begin_create_or_update, token, FLEET_RG, "pre-r1-web-0", None)
    assert done.state is OperationState.SUCCEEDED
    assert done.result.id.endswith("/snapshots/pre-r1-web-0")
    assert done.result.provisioning_state == "Succeeded"


def test_polling_one_operation_too_often_is_throttled_as_compute_does(standin: AzureStandIn) -> None:
    _, token = _begin_snapshot(standin)
    url = json.loads(base64.b64decode(token))["data"]["response"]["headers"]
    status_url = next(v for k, v in url.items() if k.lower() == "azure-asyncoperation")
    path = urlsplit(status_url)
    burst = int(COMPUTE_POLICIES["GetOperation"].resource[0])  # type: ignore[index]
    answers = [standin.handle("GET", f"{path.path}?{path.query}", b"") for _ in range(burst + 1)]
    assert all(a.status == 200 and a.body["status"] == "InProgress" and "Retry-After" in a.headers
               for a in answers[:burst])
    refused = answers[-1]
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "GetOperation" in refused.body["error"]["message"]


def test_an_operation_azure_failed_is_an_answer_with_arms_error() -> None:
    standin = AzureStandIn(FleetWorld(parse_scenario({**SMALL_FLEET, "faults": {"snapshot_failure_rate": 1.0}})))
    standin.start_in_process()
    standin.serve_realtime(speed=1.0)
    client, token = _begin_snapshot(standin)
    standin.world.clock.advance_to(standin.world.clock.now + 30)
    failed = poll(client.snapshots.begin_create_or_update, token, FLEET_RG, "pre-r1-web-0", None)
    assert failed.state is OperationState.FAILED and failed.result is None
    assert failed.error.startswith("InternalDiskManagementError:")
