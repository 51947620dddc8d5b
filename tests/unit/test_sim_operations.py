"""The simulator's long-running operations (shared.adapters.simulator.operations): a begin returns in a second of
the virtual clock with the exact time left as Retry-After; results are refused until the clock has passed the end;
a begin run again with the same key finds its operation and starts nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.adapters.simulator.adapters import to_datetime
from shared.adapters.simulator.scenario import parse_scenario
from shared.bootstrap import simulator_services
from shared.domain.model import ApplyStatus, ChangeSpec
from shared.domain.operations import OperationPending, OperationState

SCENARIO = {"name": "ops", "seed": 3,
            "fleet": {"scale_sets": [{"name": "web", "capacity": 6, "skus": {"Standard_D2s_v5": 1}}]},
            "change": {"id": "c1", "payload": {"script": "echo hi"}}}


@pytest.fixture
def svc():  # type: ignore[no-untyped-def]
    from shared.adapters.simulator.world import FleetWorld

    return simulator_services(FleetWorld(parse_scenario(SCENARIO)))


def test_a_begun_apply_ends_when_the_clock_passes_its_end(svc) -> None:  # type: ignore[no-untyped-def]
    world = svc.fleet.world
    vms = world.ids[:3]
    change = ChangeSpec.from_dict({"change_id": "c1", "kind": "run-command", "payload": {"script": "echo hi"}})
    start = world.clock.now
    began = svc.operations.begin_apply("r1:apply:w00c00", vms, change, timeout_minutes=15)
    assert began.state is OperationState.RUNNING
    assert world.clock.now - start == pytest.approx(1 / 60)  # accepted in a second; nothing waited for
    end = to_datetime(world.clock.now) + timedelta(seconds=began.retry_after_seconds)
    with pytest.raises(OperationPending):
        svc.operations.apply_results(began.handle, vms)
    assert [s.state for s in svc.operations.status([began.handle])] == [OperationState.RUNNING]

    world.clock.now = (end - to_datetime(0)).total_seconds() / 60.0
    done = svc.operations.status([began.handle])[0]
    assert done.state is OperationState.SUCCEEDED and done.ended_at is not None
    assert abs((done.ended_at - end).total_seconds()) < 1e-3
    results = svc.operations.apply_results(began.handle, vms)
    assert [r.vm_id for r in results] == vms and all(r.status is ApplyStatus.OK for r in results)
    # the step recording one VM at a time gets only what it asks for
    assert [r.vm_id for r in svc.operations.apply_results(began.handle, vms[1:2])] == vms[1:2]


def test_a_begin_run_again_starts_nothing(svc) -> None:  # type: ignore[no-untyped-def]
    world = svc.fleet.world
    vms = world.ids[:2]
    first = svc.operations.begin_snapshots("r1:snapshot:w00c00", vms, tag="pre-r1")
    taken = world.snapshots_taken
    again = svc.operations.begin_snapshots("r1:snapshot:w00c00", vms, tag="pre-r1")
    assert world.snapshots_taken == taken and again.handle == first.handle
    other = svc.operations.begin_snapshots("r1:snapshot:w00c01", world.ids[2:3], tag="pre-r1")
    assert world.snapshots_taken == taken + 1 and other.handle.key != first.handle.key
