"""Begin an ARM operation in one activity and poll it once per activity later (``operations.step``), through
the SDK's own continuation tokens, against the stand-in answering as ARM does: the begin sends the initial request
and one status request (how long the operation has left); a later step sends exactly one status request and
comes back with ARM's ``Retry-After``, without waiting; a terminal poll returns the resource, a failed operation
ARM's error, mapped; polling one operation faster than Compute's ``GetOperation`` policy allows is answered 429
with ``Retry-After``."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from shared.adapters.azure.compute import AzureDiskSnapshots, _snapshot
from shared.adapters.azure.limits import COMPUTE_POLICIES
from shared.adapters.azure.operations import StepBook, StepEntry, step
from shared.adapters.simulator.scenario import parse_scenario
from shared.adapters.simulator.standin import AzureStandIn
from shared.adapters.simulator.standin.backend import standin_settings
from shared.adapters.simulator.world import FLEET_RG, FleetWorld
from shared.domain.errors import ShadowRolloutError

from .conftest import SMALL_FLEET


@pytest.fixture
def standin() -> AzureStandIn:
    """Standing alone (its clock on the wall clock), as ARM: a poll never moves the operation along."""
    s = AzureStandIn(FleetWorld(parse_scenario(SMALL_FLEET))).start_in_process()
    s.serve_realtime(speed=1.0)
    return s


def _snapshot_step(standin: AzureStandIn, book: StepBook) -> StepEntry:
    world = standin.world
    client = AzureDiskSnapshots(standin_settings(standin)).client
    return step(book, "snapshot", client.snapshots.begin_create_or_update,
                (FLEET_RG, "pre-r1-web-0", _snapshot(world.region, world.vm_info(0).os_disk_id, "r1", world.ids[0])),
                {}, "snapshot", world.ids[0])


def _operation_requests(standin: AzureStandIn) -> list[dict[str, Any]]:
    return [r for r in standin.request_log if "/operations/" in r["path"]]


def test_a_begun_operation_is_polled_once_per_step_from_its_token(standin: AzureStandIn) -> None:
    book = StepBook()
    clock = standin.world.clock.now
    first = _snapshot_step(standin, book)
    assert len(_operation_requests(standin)) == 1  # the begin asked once how long the operation has left
    state = json.loads(base64.b64decode(first.token))["data"]  # JSON, nothing pickled: safe to keep
    assert state["response"]["status_code"] in (200, 201)
    assert "azure-asyncoperation" in {k.lower() for k in state["response"]["headers"]}
    assert not first.done
    assert 1 <= first.retry_after <= 120  # the stand-in's Retry-After: the time the snapshot has left
    assert standin.world.clock.now - clock < 1.0  # the begin did not wait for the operation (clock in minutes)

    assert not _snapshot_step(standin, book).done
    assert len(_operation_requests(standin)) == 2  # one status request per step, no loop

    standin.world.clock.advance_to(clock + 10)
    done = _snapshot_step(standin, book)
    assert done.done and done.error is None
    assert done.result.id.endswith("/snapshots/pre-r1-web-0")
    assert done.result.provisioning_state == "Succeeded"
    requests = len(standin.request_log)
    assert _snapshot_step(standin, book) is done and len(standin.request_log) == requests  # ended: nothing sent


def test_polling_one_operation_too_often_is_throttled_as_compute_does(standin: AzureStandIn) -> None:
    entry = _snapshot_step(standin, StepBook())
    url = json.loads(base64.b64decode(entry.token))["data"]["response"]["headers"]
    status_url = next(v for k, v in url.items() if k.lower() == "azure-asyncoperation")
    path = urlsplit(status_url)
    burst = int(COMPUTE_POLICIES["GetOperation"].resource[0])  # type: ignore[index]
    answers = [standin.handle("GET", f"{path.path}?{path.query}", b"") for _ in range(burst)]  # the begin asked once
    assert all(a.status == 200 and a.body["status"] == "InProgress" and "Retry-After" in a.headers
               for a in answers[:-1])
    refused = answers[-1]
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "GetOperation" in refused.body["error"]["message"]


def test_an_operation_azure_failed_ends_its_step_with_arms_error_mapped() -> None:
    standin = AzureStandIn(FleetWorld(parse_scenario({**SMALL_FLEET, "faults": {"snapshot_failure_rate": 1.0}})))
    standin.start_in_process()
    standin.serve_realtime(speed=1.0)
    book = StepBook()
    _snapshot_step(standin, book)
    standin.world.clock.advance_to(standin.world.clock.now + 30)
    failed = _snapshot_step(standin, book)
    assert failed.done and failed.result is None
    assert isinstance(failed.error, ShadowRolloutError) and "InternalDiskManagementError" in str(failed.error)
