"""Every compute and telemetry operation of the Azure adapters, over HTTP against the stand-in: success with
long-running polling, 429 with Retry-After, transient 5xx, 409, 404 and a malformed answer."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from shared.adapters.simulator.adapters import SimFleet, to_datetime
from shared.adapters.simulator.standin import ScriptedFault
from shared.domain.errors import AzureOperationError, Conflict, NotFound, ShadowRolloutError
from shared.domain.model import ChangeSpec, ShadowPlan, ShadowState, SnapshotInfo

from .conftest import API, WEB, Azure

SUB = "/subscriptions/00000000-0000-4000-8000-00000000c0de"
WEB0 = f"{SUB}/resourceGroups/rg-fleet/providers/Microsoft.Compute/virtualMachines/web_0"
API0 = f"{API}/virtualMachines/0"


def _plan(az: Azure, vm: str = WEB0) -> ShadowPlan:
    info = az.world.vm_info(az.world.index_of(vm))
    return ShadowPlan(vm, info.stratum.key, info.sku, info.zone)


def _with_shadow(az: Azure) -> str:
    [shadow] = az.shadows.create([_plan(az)], rollout_id="r-1", spot_fallback="regular")
    az.world.clock.now += 5
    return shadow.shadow_id


def _snapshotted(az: Azure, vm: str) -> SnapshotInfo:
    [snap] = az.snapshots.snapshot([vm], tag="pre-r-1")
    return snap


@dataclass
class Op:
    """One adapter operation: how to set it up, call it, which request to fault, and how it reports a refusal."""

    method: str
    path: str
    call: Callable[[Azure, Any], Any]
    setup: Callable[[Azure], Any] = lambda az: None
    check: Callable[[Azure, Any], None] = lambda az, result: None
    refusal: str = "raises"
    not_found: str = ""
    """What a 404 means when it is not an error (e.g. ``deleted`` for a shadow's status)."""
    """``raises``: the mapped error is raised; ``missing``: the item is left out (snapshots); ``failed``: the
    item comes back FAILED with the reason (shadows)."""


def _check_inventory(az: Azure, vms: Any) -> None:
    assert [v.vm_id for v in vms][:1] == [WEB0] and len(vms) == 7
    assert {v.orchestration for v in vms} == {"Flexible", "Uniform"}
    assert vms[0].sku == "Standard_D2s_v5" and vms[0].os_disk_id.endswith("/disks/web_0_osdisk")


def _check_applied(az: Azure, results: Any) -> None:
    assert [r.status.value for r in results] == ["ok", "ok"]
    assert all(r.duration_s > 0 for r in results)
    assert not np.isnan(az.world.t["apply_at"][az.world.index_of(WEB0)])


def _check_signals(az: Azure, frame: Any) -> None:
    assert frame.signals["cpu_pct"].shape == (2, 10)
    assert not np.isnan(frame.signals["cpu_pct"]).any() and not np.isnan(frame.signals["error_count"]).any()


def _signals(az: Azure, _: Any) -> Any:
    az.world.clock.now = 30.0
    return az.telemetry.signals([WEB0, API0], to_datetime(10.0), to_datetime(20.0))


CHANGE = ChangeSpec("chg-1", "run-command", {"script": "echo change"})
OPS: dict[str, Op] = {
    "inventory": Op("GET", r"virtualMachineScaleSets/web$", lambda az, _: az.fleet.inventory([WEB, API]),
                    check=_check_inventory),
    "capacity": Op("GET", r"virtualMachineScaleSets/api$", lambda az, _: az.fleet.capacity(API),
                   check=lambda az, n: (n == 3) or pytest.fail(f"capacity {n}")),
    "max_capacity": Op("GET", r"virtualMachineScaleSets/api$", lambda az, _: az.fleet.max_capacity(API),
                       check=lambda az, n: (n == 1000) or pytest.fail(f"max_capacity {n}")),  # Uniform, large
    "size": Op("GET", r"virtualMachineScaleSets/api$", lambda az, _: az.fleet.size(API),
               check=lambda az, n: (n == (3, 1000)) or pytest.fail(f"size {n}")),
    "set_capacity": Op("PATCH", r"virtualMachineScaleSets/web$", lambda az, _: az.fleet.set_capacity(WEB, 6),
                       check=lambda az, n: (n == 6 == az.world.scale_sets["web"].capacity) or pytest.fail(str(n))),
    "apply run-command": Op("PUT", r"/runCommands/", lambda az, _: az.fleet.apply_change(
        [WEB0, API0], CHANGE, timeout_minutes=15), check=_check_applied),
    "apply extension": Op("PUT", r"/extensions/", lambda az, _: az.fleet.apply_change(
        [WEB0, API0], ChangeSpec("chg-1", "extension", {"script": "echo change"}), timeout_minutes=15),
        check=_check_applied),
    "apply model-update": Op("POST", r"/manualupgrade$", lambda az, _: az.fleet.apply_change(
        [API0, f"{API}/virtualMachines/1"], ChangeSpec("chg-1", "model-update", {"script": "echo m"}),
        timeout_minutes=15), check=lambda az, r: [x.status.value for x in r] == ["ok", "ok"] or pytest.fail(str(r))),
    "snapshot": Op("PUT", r"rg-fleet/providers/Microsoft.Compute/snapshots/", lambda az, _: az.snapshots.snapshot(
        [WEB0], tag="pre-r-1"), refusal="missing",
        check=lambda az, s: (s[0].snapshot_id.endswith("/snapshots/pre-r-1-web_0")) or pytest.fail(str(s))),
    "restore by disk swap": Op("PATCH", r"virtualMachines/web_0$", lambda az, snap: az.fleet.restore_from_snapshots(
        [snap]), setup=lambda az: _snapshotted(az, WEB0),
        check=lambda az, r: (r[0].ok and "disk swap" in r[0].message) or pytest.fail(str(r))),
    "restore by reimage": Op("POST", r"virtualMachines/0/reimage$", lambda az, snap: az.fleet.restore_from_snapshots(
        [snap]), setup=lambda az: _snapshotted(az, API0),
        check=lambda az, r: (r[0].ok and "reimage" in r[0].message) or pytest.fail(str(r))),
    "post-rollback script": Op("POST", r"/runCommand$", lambda az, _: az.fleet.run_script([WEB0, API0], "true"),
                               setup=lambda az: az.fleet.restore_from_snapshots(az.snapshots.snapshot(
                                   [WEB0, API0], tag="pre-r-1")),
                               check=lambda az, r: r == {WEB0: True, API0: True} or pytest.fail(str(r))),
    "create shadow": Op("PUT", r"rg-shadow-pool/providers/Microsoft.Compute/virtualMachines/", lambda az, _: (
        az.shadows.create([_plan(az)], rollout_id="r-1", spot_fallback="regular")), refusal="failed",
        setup=lambda az: az.shadows._ensure_pool(),
        check=lambda az, s: (s[0].state is ShadowState.RUNNING and s[0].spot) or pytest.fail(str(s))),
    "shadow status": Op("GET", r"rg-shadow-pool/.*/instanceView$", lambda az, sid: az.shadows.status([sid]),
                        setup=_with_shadow, not_found="deleted",
                        check=lambda az, s: list(s.values()) == [ShadowState.RUNNING] or pytest.fail(str(s))),
    "shadow load": Op("POST", r"rg-shadow-pool/.*/runCommand$", lambda az, sid: az.load.drive({sid: 0.55}),
                      setup=_with_shadow, check=lambda az, _: (
                          az.world.t["drive_target"][az.world.shadow_rows[0]] == 0.55) or pytest.fail("not driven")),
    "teardown": Op("POST", r"virtualMachineScaleSets/shadow-pool/delete$", lambda az, sid: az.shadows.teardown([sid]),
                   setup=_with_shadow, check=lambda az, n: n == 1 or pytest.fail(str(n))),
    "metrics": Op("POST", r"metrics:getBatch$", _signals, check=_check_signals),
    "logs": Op("POST", r"/v1/workspaces/.*/query$", _signals, check=_check_signals),
}


def _run(az: Azure, op: Op) -> Any:
    ctx = op.setup(az)
    return op.call(az, ctx)


def _matching(az: Azure, op: Op) -> int:
    import re

    return sum(1 for m, p in az.standin.requests if m == op.method and re.search(op.path, p, re.IGNORECASE))


@pytest.mark.parametrize("name", list(OPS))
def test_operation_succeeds_through_long_running_polling(azure: Azure, name: str) -> None:
    op = OPS[name]
    result = _run(azure, op)
    op.check(azure, result)
    assert _matching(azure, op) >= 1, "the operation never reached the wire"
    if op.method != "GET" and name not in ("metrics", "logs"):
        # 202 with an operation, then polled: once is enough (the client's wait moves the clock to its end)
        assert azure.calls("GET", "/operations/") >= 1, "no long-running operation was polled"


@pytest.mark.parametrize("name", list(OPS))
def test_429_with_retry_after_is_retried_without_sleeping_in_wall_time(azure: Azure, name: str) -> None:
    op = OPS[name]
    ctx = op.setup(azure)
    azure.standin.inject(ScriptedFault(op.method, op.path, 429, {"error": {"code": "TooManyRequests",
                                                                            "message": "slow down"}},
                                       {"Retry-After": "30"}))
    before = _matching(azure, op)
    t = time.monotonic()
    result = op.call(azure, ctx)
    assert time.monotonic() - t < 10, "Retry-After was slept in wall time"
    op.check(azure, result)
    assert _matching(azure, op) - before >= 2


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("status", [500, 503])
def test_transient_5xx_is_retried_by_the_sdk_policy(azure: Azure, name: str, status: int) -> None:
    op = OPS[name]
    ctx = op.setup(azure)
    azure.standin.inject(ScriptedFault(op.method, op.path, status, {"error": {"code": "InternalServerError",
                                                                               "message": "try again"}}))
    op.check(azure, op.call(azure, ctx))


def _refused(azure: Azure, op: Op, ctx: Any, error: type[ShadowRolloutError], status: int | None) -> None:
    if op.refusal == "raises":
        with pytest.raises(error) as info:
            op.call(azure, ctx)
        if status is not None:
            assert isinstance(info.value, AzureOperationError) and info.value.status == status
    elif op.refusal == "missing":
        assert op.call(azure, ctx) == []
    else:
        [shadow] = op.call(azure, ctx)
        assert shadow.state is ShadowState.FAILED and shadow.message


@pytest.mark.parametrize("name", list(OPS))
def test_409_conflict_is_reported_as_conflict(azure: Azure, name: str) -> None:
    op = OPS[name]
    ctx = op.setup(azure)
    azure.standin.inject(ScriptedFault(op.method, op.path, 409, {"error": {"code": "OperationNotAllowed",
                                                                            "message": "busy"}}, times=99))
    _refused(azure, op, ctx, Conflict, 409)


@pytest.mark.parametrize("name", list(OPS))
def test_404_is_reported_as_not_found(azure: Azure, name: str) -> None:
    op = OPS[name]
    ctx = op.setup(azure)
    azure.standin.inject(ScriptedFault(op.method, op.path, 404, {"error": {"code": "ResourceNotFound",
                                                                            "message": "gone"}}, times=99))
    if op.not_found == "deleted":
        assert set(op.call(azure, ctx).values()) == {ShadowState.DELETED}
        return
    _refused(azure, op, ctx, NotFound, 404)


@pytest.mark.parametrize("name", list(OPS))
def test_malformed_answer_is_an_error_of_the_project_not_a_crash(azure: Azure, name: str) -> None:
    """A body that is not JSON, where the operation's outcome is read (the answer itself, or the status of
    its long-running operation): the project's error, naming the operation."""
    op = OPS[name]
    ctx = op.setup(azure)
    lro = op.method != "GET" and name not in ("metrics", "logs")
    method, path = ("GET", r"/operations/") if lro else (op.method, op.path)
    azure.standin.inject(ScriptedFault(method, path, 200, "<html>proxy error</html>", times=99))
    if op.refusal == "failed":
        [shadow] = op.call(azure, ctx)
        assert shadow.state is ShadowState.FAILED
        return
    if op.refusal == "missing":
        assert op.call(azure, ctx) == []
        return
    with pytest.raises(AzureOperationError):
        op.call(azure, ctx)


def test_retry_after_is_honoured_in_wall_time_outside_the_stand_in(azure: Azure) -> None:
    """Production settings keep azure-core's policy, which sleeps what ARM asks before retrying."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy
    from azure.mgmt.compute import ComputeManagementClient

    from shared.adapters.azure.clients import StaticTokenCredential
    from shared.adapters.simulator.standin import AzureStandIn

    from .conftest import make_world

    with AzureStandIn(make_world()) as standin:  # on a socket: azure-core's default transport
        client = ComputeManagementClient(StaticTokenCredential(), azure.settings.subscription_id,
                                         base_url=standin.url, authentication_policy=SansIOHTTPPolicy())
        standin.inject(ScriptedFault("GET", r"virtualMachineScaleSets/web$", 429, {"error": {
            "code": "TooManyRequests", "message": "slow down"}}, {"Retry-After": "1"}))
        t = time.monotonic()
        client.virtual_machine_scale_sets.get("rg-fleet", "web")
        assert time.monotonic() - t >= 1.0


def test_polling_advances_the_virtual_clock_to_the_operations_end(azure: Azure) -> None:
    azure.world.clock.now = 10.0
    [result] = azure.fleet.apply_change([WEB0], CHANGE, timeout_minutes=15)
    assert azure.world.clock.now == pytest.approx(10.0 + result.duration_s / 60.0, abs=1e-3)


def test_a_crashing_change_comes_back_as_a_failed_apply_with_its_exit_code() -> None:
    from shared.adapters.simulator.standin import AzureStandIn

    from .conftest import make_world

    world = make_world({"change": {"id": "c", "truth": {"effects": [{"mode": "crash_on_apply"}]}}})
    with AzureStandIn(world) as standin:
        az = Azure(standin)
        for kind in ("run-command", "extension"):
            vm = WEB0 if kind == "run-command" else f"{SUB}/resourceGroups/rg-fleet/providers/Microsoft.Compute/" \
                                                     "virtualMachines/web_1"
            [r] = az.fleet.apply_change([vm], ChangeSpec("c", kind, {"script": "x"}), timeout_minutes=15)
            assert (r.status.value, r.exit_code) == ("failed", 1), kind


def test_a_hung_change_times_out_at_the_policy_limit() -> None:
    from shared.adapters.simulator.standin import AzureStandIn

    from .conftest import make_world

    world = make_world({"change": {"id": "c", "truth": {"effects": [{"mode": "apply_timeout"}]}}})
    with AzureStandIn(world) as standin:
        az = Azure(standin)
        [r] = az.fleet.apply_change([WEB0], ChangeSpec("c", "run-command", {"script": "x"}), timeout_minutes=7)
        assert r.status.value == "timeout" and r.duration_s == pytest.approx(420.0, abs=0.2)
        [r] = az.fleet.apply_change([API0], ChangeSpec("c", "extension", {"script": "x"}), timeout_minutes=7)
        assert r.status.value == "timeout" and r.exit_code is None


def test_spot_refusal_falls_back_to_a_regular_vm_or_to_none_as_policy_says() -> None:
    from shared.adapters.simulator.standin import AzureStandIn

    from .conftest import make_world

    world = make_world({"faults": {"spot_unavailable_skus": ["Standard_D2s_v5"]}})
    with AzureStandIn(world) as standin:
        az = Azure(standin)
        [regular] = az.shadows.create([_plan(az)], rollout_id="r-1", spot_fallback="regular")
        assert regular.state is ShadowState.RUNNING and not regular.spot
        assert regular.message == "Spot refused for Standard_D2s_v5: regular-priced VM"
        assert az.body("PUT", regular.shadow_id.rsplit("/", 1)[-1])["properties"]["priority"] == "Regular"
        [none] = az.shadows.create([_plan(az, f"{SUB}/resourceGroups/rg-fleet/providers/Microsoft.Compute/"
                                                "virtualMachines/web_1")], rollout_id="r-2", spot_fallback="skip")
        assert none.state is ShadowState.FAILED
        assert none.message == "Spot capacity refused for Standard_D2s_v5 in zone 2"
        assert not any("r-2" in k and "osdisk" in k for k in standin.disks), "the refused shadow's disk was left"


def test_spot_refusal_falls_back_to_the_same_family_or_to_a_capped_number_of_regular_vms() -> None:
    from shared.adapters.simulator.standin import AzureStandIn

    from .conftest import make_world

    world = make_world({"faults": {"spot_unavailable_skus": ["Standard_D2s_v5"]}})
    with AzureStandIn(world) as standin:
        az = Azure(standin)
        [family] = az.shadows.create([_plan(az)], rollout_id="r-1", spot_fallback="family")
        assert family.state is ShadowState.RUNNING and family.spot and family.sku == "Standard_D4s_v5"
        assert family.message == "Spot refused for Standard_D2s_v5: Spot Standard_D4s_v5 of the same family"
        body = az.body("PUT", family.shadow_id.rsplit("/", 1)[-1])["properties"]
        assert body["priority"] == "Spot" and body["hardwareProfile"]["vmSize"] == "Standard_D4s_v5"
        plans = [_plan(az, f"{SUB}/resourceGroups/rg-fleet/providers/Microsoft.Compute/virtualMachines/web_{i}")
                 for i in (1, 2)]
        capped = az.shadows.create(plans, rollout_id="r-2", spot_fallback="regular", max_regular=1)
        assert [s.state for s in capped] == [ShadowState.RUNNING, ShadowState.FAILED]
        assert not capped[0].spot


def test_evicted_shadow_is_reported_evicted_and_still_torn_down() -> None:
    from shared.adapters.simulator.standin import AzureStandIn

    from .conftest import make_world

    world = make_world({"faults": {"spot_evictions_per_hour": 60.0}})
    with AzureStandIn(world) as standin:
        az = Azure(standin)
        sid = _with_shadow(az)
        world.clock.now += 600
        assert az.shadows.status([sid]) == {sid: ShadowState.EVICTED}
        assert az.shadows.teardown([sid]) == 1
        assert az.shadows.status([sid]) == {sid: ShadowState.DELETED}
        assert az.shadows.teardown([sid]) == 0


def test_a_restore_whose_first_attempt_fails_is_tried_once_more() -> None:
    from shared.adapters.simulator.standin import AzureStandIn

    from .conftest import make_world

    world = make_world({"faults": {"restore_failure_rate": 1.0}})
    with AzureStandIn(world) as standin:
        az = Azure(standin)
        snaps = az.snapshots.snapshot([WEB0, API0], tag="pre-r")
        results = az.fleet.restore_from_snapshots(snaps)
        assert [(r.ok, r.attempts) for r in results] == [(True, 2), (True, 2)]


def test_telemetry_hides_the_minute_in_progress_and_the_future(azure: Azure) -> None:
    azure.world.clock.now = 15.5
    frame = azure.telemetry.signals([WEB0], to_datetime(10.0), to_datetime(20.0))
    cpu = frame.signals["cpu_pct"][0]
    assert not np.isnan(cpu[:5]).any() and np.isnan(cpu[5:]).all()
    assert frame.start == to_datetime(10.0) and frame.width == 10


def test_telemetry_asks_for_absolute_windows_from_the_rollouts_clock(azure: Azure) -> None:
    azure.world.clock.now = 30.0
    start = to_datetime(10.0)
    azure.telemetry.signals([WEB0], start, start + timedelta(minutes=10))
    body = azure.body("POST", "/query")
    assert body["timespan"].startswith("2026-01-05T00:10:00") and "/" in body["timespan"]
    assert "// query: error_counts" in body["query"] or "// query: health_probes" in body["query"]


def test_uniform_restore_reimages_and_replaces_data_disks_from_their_snapshots() -> None:
    from shared.adapters.simulator.standin import AzureStandIn

    from .conftest import make_world

    with AzureStandIn(make_world(), data_disks=2) as standin:
        az = Azure(standin)
        [snap] = az.snapshots.snapshot([API0], tag="pre-r")
        names = sorted(p.rsplit("/", 1)[-1] for m, p in standin.requests if m == "PUT" and "/snapshots/" in p)
        assert names == ["pre-r-api_0", "pre-r-api_0-lun0", "pre-r-api_0-lun1"]
        [result] = az.fleet.restore_from_snapshots([snap])
        assert result.ok and "reimage" in result.message
        disks = az.fleet.client.virtual_machine_scale_set_vms.get("rg-fleet", "api", "0").storage_profile.data_disks
        assert [d.lun for d in disks] == [0, 1]
        assert all("restored-lun" in d.managed_disk.id for d in disks)
        sources = [standin.disks[d.managed_disk.id.lower()]["properties"]["creationData"]["sourceResourceId"]
                   for d in disks]
        assert [x.rsplit("/", 1)[-1] for x in sources] == ["pre-r-api_0-lun0", "pre-r-api_0-lun1"]


def test_a_vm_whose_data_disk_snapshot_failed_is_left_out(azure: Azure) -> None:
    from shared.adapters.simulator.standin import AzureStandIn

    from .conftest import make_world

    with AzureStandIn(make_world(), data_disks=1) as standin:
        az = Azure(standin)
        standin.inject(ScriptedFault("PUT", r"/snapshots/pre-r-web_0-lun0$", 409, {"error": {
            "code": "OperationNotAllowed", "message": "disk busy"}}, times=9))
        assert [s.vm_id for s in az.snapshots.snapshot([WEB0, API0], tag="pre-r")] == [API0]


def test_expired_snapshots_of_a_rollout_are_deleted(azure: Azure) -> None:
    azure.snapshots.snapshot([WEB0, API0], tag="pre-old")
    azure.snapshots.snapshot([f"{SUB}/resourceGroups/rg-fleet/providers/Microsoft.Compute/virtualMachines/web_1"],
                             tag="pre-new")
    assert azure.snapshots.delete_snapshots("rg-fleet", "pre-old") == 2
    assert sorted(k.rsplit("/", 1)[-1] for k in azure.standin.snapshots) == ["pre-new-web_1"]
    assert azure.snapshots.delete_snapshots("rg-fleet", "pre-old") == 0


def test_apply_results_come_from_the_activity_log_query(azure: Azure) -> None:
    azure.world.clock.now = 10.0
    azure.fleet.apply_change([WEB0], CHANGE, timeout_minutes=15)
    azure.fleet.apply_change([API0], ChangeSpec("chg-1", "extension", {"script": "x"}), timeout_minutes=15)
    azure.world.clock.now = 30.0
    got = azure.telemetry.apply_results([WEB0, API0, f"{API}/virtualMachines/2"], to_datetime(0), to_datetime(30))
    assert got == {WEB0: "Succeeded", API0: "Succeeded"}
    assert "// query: apply_results" in azure.body("POST", "/query")["query"]


def test_a_restore_run_again_finds_the_restored_disk_and_changes_nothing(azure: Azure) -> None:
    """At-least-once delivery: the second run looks at the VM's OS disk before creating, stopping or swapping."""
    [snap] = azure.snapshots.snapshot([WEB0], tag="pre-r")
    [first] = azure.fleet.restore_from_snapshots([snap])
    assert first.ok and first.attempts >= 1
    before = len(azure.standin.requests)
    [again] = azure.fleet.restore_from_snapshots([snap])
    assert again.ok and again.attempts == 0 and again.message.startswith("already restored from pre-r-web_0")
    assert all(m == "GET" for m, _ in azure.standin.requests[before:])


def test_guest_extensions_are_read_from_each_scale_sets_model_over_the_wire() -> None:
    from shared.adapters.azure.compute import AzureFleet
    from shared.adapters.simulator.standin import AzureStandIn
    from shared.adapters.simulator.standin.backend import standin_settings

    from .conftest import SMALL_FLEET, make_world

    sets = [dict(SMALL_FLEET["fleet"]["scale_sets"][0]),
            {**SMALL_FLEET["fleet"]["scale_sets"][1], "extensions": ["AzureMonitorLinuxAgent"]}]
    with AzureStandIn(make_world({"fleet": {"scale_sets": sets}})) as standin:
        found = AzureFleet(standin_settings(standin)).guest_extensions([WEB, API])
    assert {"AzureMonitorLinuxAgent", "shadow-rollout-guest"} <= found[WEB]
    assert "AzureMonitorLinuxAgent" in found[API] and "shadow-rollout-guest" not in found[API]


def test_a_rollouts_snapshots_are_deleted_by_tag_across_its_resource_groups_named_in_any_case(azure: Azure) -> None:
    azure.snapshots.snapshot([WEB0, API0], tag="pre-r")
    azure.snapshots.snapshot([f"{SUB}/resourceGroups/rg-fleet/providers/Microsoft.Compute/virtualMachines/web_1"],
                             tag="pre-other")
    assert azure.snapshots.delete_tagged("pre-r", ["rg-fleet", "RG-FLEET"]) == 2  # one group, listed once
    assert sorted(k.rsplit("/", 1)[-1] for k in azure.standin.snapshots) == ["pre-other-web_1"]
    assert azure.snapshots.delete_tagged("pre-r", ["rg-fleet"]) == 0


def test_a_scale_sets_size_is_one_read_giving_what_capacity_and_max_capacity_give(azure: Azure) -> None:
    """A scale-out needs both its scale set's capacity and maximum (activities/capacity.py): one GET, not two."""
    reads = azure.calls("GET", "virtualMachineScaleSets/api")
    size = azure.fleet.size(API)
    assert azure.calls("GET", "virtualMachineScaleSets/api") == reads + 1
    assert size == (azure.fleet.capacity(API), azure.fleet.max_capacity(API)) == (3, 1000)
    assert SimFleet(azure.world).size(API) == size
