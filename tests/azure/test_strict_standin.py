"""The stand-in refuses what Azure refuses (docs/azure-adapters.md, "What the stand-in refuses"): for each rule,
the request the adapters used to send is refused with ARM's error shape naming the field, and the adapters'
request now passes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.adapters.azure.errors import map_error
from shared.adapters.simulator.adapters import SimFleet, to_datetime
from shared.adapters.simulator.standin import AzureStandIn
from shared.domain.errors import CapacityUnavailable
from shared.domain.model import ChangeSpec, ShadowPlan, ShadowState

from .conftest import API, SMALL_FLEET, WEB, Azure, make_world

SUB = "00000000-0000-4000-8000-00000000c0de"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-shadow-pool/providers/Microsoft.Compute"
WEB0 = WEB.replace("virtualMachineScaleSets/web", "virtualMachines/web_0")
API0 = f"{API}/virtualMachines/0"
V = "?api-version=2024-11-01"


def _send(standin: AzureStandIn, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    resp = standin.handle(method, path + V, json.dumps(body).encode() if body is not None else b"")
    return resp.status, resp.body


def _plan(az: Azure, vm: str = WEB0, zone: str | None = None) -> ShadowPlan:
    info = az.world.vm_info(az.world.index_of(vm))
    return ShadowPlan(vm, info.stratum.key, info.sku, info.zone if zone is None else zone)


def _shadow_vm_body(az: Azure) -> dict[str, Any]:
    return next(b for m, p, b in az.standin.bodies if m == "PUT" and "rg-shadow-pool" in p
                and p.rsplit("/", 2)[-2] == "virtualMachines")


def _disk(az: Azure) -> str:
    return str(_shadow_vm_body(az)["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"])


def test_an_unknown_member_is_refused_naming_its_path(azure: Azure) -> None:
    status, body = _send(azure.standin, "PUT", f"{RG}/snapshots/s1", {
        "location": "eastus", "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": "x"},
                                             "incremantal": True}})
    assert status == 400
    assert body["error"]["code"] == "InvalidRequestFormat"
    assert body["error"]["target"] == "properties.incremantal"


def test_a_missing_required_field_a_read_only_one_and_a_bad_enum_are_refused(azure: Azure) -> None:
    snap = {"creationData": {"createOption": "Copy", "sourceResourceId": "x"}}
    status, body = _send(azure.standin, "PUT", f"{RG}/snapshots/s1", {"properties": snap})
    assert (status, body["error"]["target"]) == (400, "location")
    status, body = _send(azure.standin, "PUT", f"{RG}/snapshots/s1", {
        "location": "eastus", "properties": {**snap, "provisioningState": "Succeeded"}})
    assert (status, body["error"]["target"]) == (400, "properties.provisioningState")
    status, body = _send(azure.standin, "PUT", f"{RG}/snapshots/s1", {
        "location": "eastus", "properties": {"creationData": {"createOption": "Clone", "sourceResourceId": "x"}}})
    assert (status, body["error"]["target"]) == (400, "properties.creationData.createOption")
    assert "Copy" in body["error"]["message"]


def test_a_non_zonal_shadow_has_no_zones_and_empty_zone_is_refused(azure: Azure) -> None:
    [shadow] = azure.shadows.create([_plan(azure, zone="")], rollout_id="r", spot_fallback="regular")
    assert shadow.state is ShadowState.RUNNING, shadow.message
    sent = _shadow_vm_body(azure)
    assert "zones" not in sent
    old = {**sent, "zones": [""]}
    status, body = _send(azure.standin, "PUT", f"{RG}/virtualMachines/old-zones", old)
    assert (status, body["error"]["code"], body["error"]["target"]) == (400, "InvalidParameter", "zones")


def test_a_trusted_launch_shadow_carries_its_sources_security_type(azure: Azure) -> None:
    [shadow] = azure.shadows.create([_plan(azure)], rollout_id="r", spot_fallback="regular")
    assert shadow.state is ShadowState.RUNNING, shadow.message
    sent = _shadow_vm_body(azure)
    assert sent["properties"]["securityProfile"]["securityType"] == "TrustedLaunch"
    old = {**sent, "properties": {k: v for k, v in sent["properties"].items() if k != "securityProfile"}}
    azure.standin.vms.clear()  # the disk is free again
    status, body = _send(azure.standin, "PUT", f"{RG}/virtualMachines/old-security", old)
    assert status == 400 and body["error"]["target"] == "properties.securityProfile.securityType"
    assert "security type" in body["error"]["message"].lower()


def test_a_shadow_of_a_marketplace_plan_image_carries_the_plan() -> None:
    from .conftest import make_world

    with AzureStandIn(make_world()) as standin:
        az = Azure(standin)
        image = az.world.vm_info(az.world.index_of(WEB0)).image
        standin.plans[image] = {"name": "plan-a", "publisher": "contoso", "product": "app"}
        [shadow] = az.shadows.create([_plan(az)], rollout_id="r", spot_fallback="regular")
        assert shadow.state is ShadowState.RUNNING, shadow.message
        sent = _shadow_vm_body(az)
        assert sent["plan"] == {"name": "plan-a", "publisher": "contoso", "product": "app"}
        standin.vms.clear()
        status, body = _send(standin, "PUT", f"{RG}/virtualMachines/old-plan",
                             {k: v for k, v in sent.items() if k != "plan"})
        assert (status, body["error"]["code"]) == (400, "VMMarketplaceInvalidInput")


def test_a_spot_quota_refusal_is_a_capacity_problem_and_takes_the_fallback() -> None:
    from .conftest import make_world

    with AzureStandIn(make_world()) as standin:
        standin.spot_vcpu_quota = 0
        az = Azure(standin)
        [shadow] = az.shadows.create([_plan(az)], rollout_id="r", spot_fallback="regular")
        assert shadow.state is ShadowState.RUNNING and not shadow.spot, shadow.message
        assert "regular" in shadow.message
        refused = [r for r in standin.request_log if r["status"] == 409 and "virtualMachines" in r["path"]]
        assert refused, "the Spot request was not refused by the quota"


def test_quota_codes_map_to_capacity_unavailable() -> None:
    from azure.core.exceptions import HttpResponseError
    from azure.core.rest import HttpRequest

    class _Resp:
        status_code = 409
        reason = "Conflict"
        request = HttpRequest("PUT", "https://x")

        def __init__(self) -> None:
            self.headers: dict[str, str] = {}

        def text(self) -> str:
            return ""

    for code, message in (("QuotaExceeded", "Operation results in exceeding quota limits of Core."),
                          ("OperationNotAllowed", "Operation could not be completed as it results in exceeding "
                                                  "approved LowPriorityCores quota.")):
        exc = HttpResponseError(message=message, response=_Resp())
        exc.error = type("E", (), {"code": code})()  # type: ignore[assignment]
        assert isinstance(map_error(exc, operation="create_vm"), CapacityUnavailable), code


def test_metrics_batches_are_per_resource_type_and_uniform_instances_use_their_own(azure: Azure) -> None:
    frame = azure.telemetry.signals([WEB0, API0], to_datetime(0), to_datetime(5))
    assert frame.vm_ids == [WEB0, API0]
    calls = [(p, b) for m, p, b in azure.standin.bodies if p.endswith("metrics:getBatch")]
    assert len(calls) == 2  # one per resource type
    # the old request: both in one batch, as virtual machines
    resp = azure.standin.handle("POST", f"/subscriptions/{SUB}/metrics:getBatch{V}&metricnamespace="
                                "Microsoft.Compute/virtualMachines&metricnames=Percentage%20CPU&starttime="
                                "2026-01-01T00:00:00Z&endtime=2026-01-01T00:05:00Z",
                                json.dumps({"resourceids": [WEB0, API0]}).encode())
    assert resp.status == 400 and resp.body["error"]["target"] == "resourceids"
    assert "virtualMachineScaleSets/virtualMachines" in resp.body["error"]["message"]


def test_one_action_run_command_at_a_time_per_vm(azure: Azure) -> None:
    script = {"commandId": "RunShellScript", "script": ["sleep 1"]}
    path = WEB0 + "/runCommand"
    first, _ = _send(azure.standin, "POST", path, script)
    second, body = _send(azure.standin, "POST", path, script)
    assert first == 202
    assert (second, body["error"]["code"]) == (409, "Conflict")


def test_an_incremental_snapshot_stays_in_its_disks_subscription(azure: Azure) -> None:
    other = "/subscriptions/11111111-1111-4111-8111-111111111111/resourceGroups/x/providers/Microsoft.Compute/disks/d"
    status, body = _send(azure.standin, "PUT", f"{RG}/snapshots/s1", {
        "location": "eastus", "properties": {"incremental": True,
                                             "creationData": {"createOption": "Copy", "sourceResourceId": other}}})
    assert (status, body["error"]["target"]) == (400, "properties.creationData.sourceResourceId")


def test_every_adapter_request_passes_the_strict_checks(azure: Azure) -> None:
    """One of each operation, as in test_request_shapes: none is refused with 400."""
    [shadow] = azure.shadows.create([_plan(azure)], rollout_id="r", spot_fallback="regular")
    azure.world.clock.now += 5
    azure.load.drive({shadow.shadow_id: 0.5})
    snaps = azure.snapshots.snapshot([WEB0, API0], tag="pre-r")
    azure.fleet.apply_change([WEB0], ChangeSpec("c1", "run-command", {"script": "echo 1"}), timeout_minutes=15)
    azure.fleet.apply_change([API0], ChangeSpec("c2", "extension", {"script": "echo 2"}), timeout_minutes=15)
    azure.fleet.apply_change([f"{API}/virtualMachines/1"], ChangeSpec("c3", "model-update", {"script": "echo 3"}),
                             timeout_minutes=15)
    azure.fleet.restore_from_snapshots(snaps)
    azure.fleet.set_capacity(WEB, 5)
    azure.shadows.teardown([shadow.shadow_id])
    refused = [r for r in azure.standin.request_log if r["status"] == 400]
    assert refused == []
    assert len(azure.standin.request_log) > 20


# ---------------------------------------------------------------------------------------------- throttling
def test_token_buckets_give_the_documented_burst_then_refill_rate() -> None:
    from shared.adapters.azure.limits import ArmKind, Budget, Charge

    budget = Budget()
    write = Charge(ArmKind.WRITES)
    starts = [budget.reserve([write], "p", 0.0) for _ in range(260)]
    assert starts[199] == 0.0  # a burst of 200 writes
    assert starts[200] > 0.0
    assert abs(starts[259] - 6.0) < 1e-6  # then 10 per second
    other = budget.reserve([write], "another-principal", 0.0)
    assert other == 0.0  # the buckets are per principal


def test_run_commands_and_extensions_count_as_vm_updates() -> None:
    from shared.adapters.azure.limits import classify

    vm = WEB0
    for method, path in (("PUT", f"{vm}/runCommands/x"), ("POST", f"{vm}/runCommand"), ("PUT", f"{vm}/extensions/e"),
                         ("PATCH", vm), ("POST", f"{vm}/start")):
        assert classify(method, path).policy == "UpdateVM", path
    assert classify("POST", f"{vm}/deallocate").policy == "DeleteVM"
    assert classify("PUT", f"{API0}/runCommands/x").policy == "UpdateVMSSVMs"
    assert classify("GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/eastus/operations/1"
                    ).policy == "GetOperation"


def test_the_standin_answers_429_with_retry_after_and_remaining_headers_when_a_bucket_is_empty(azure: Azure) -> None:
    statuses = []
    for k in range(205):  # an unpaced client: 205 writes at one instant
        resp = azure.standin.handle("DELETE", f"{RG}/snapshots/none-{k}{V}", b"")
        statuses.append(resp.status)
        last = resp
    assert statuses[:200] == [204] * 200
    assert statuses[200:] == [429] * 5
    assert int(last.headers["Retry-After"]) >= 1
    assert last.headers["x-ms-ratelimit-remaining-subscription-deletes"] == "0"
    assert last.body["error"]["code"] == "SubscriptionRequestsThrottled"
    assert azure.standin.overdrawn == 0
    assert sum(r["throttled"] for r in azure.standin.request_log) == 5


def test_the_adapters_pace_a_batch_larger_than_the_budget_and_are_never_throttled() -> None:
    """300 run commands at once: 300 writes against a burst of 200; the limiter spreads them: at most 1% of the
    ARM requests are answered 429 (concurrent pollers may race for the last token) and none fails."""
    from .conftest import make_world

    big = {"fleet": {"scale_sets": [{"name": "web", "capacity": 300, "zones": ["1"], "skus": {"Standard_D2s_v5": 1}}]}}
    with AzureStandIn(make_world(big)) as standin:
        az = Azure(standin)
        vms = [v.vm_id for v in az.fleet.inventory([WEB])]
        results = az.fleet.apply_change(vms, ChangeSpec("c", "run-command", {"script": "true"}), timeout_minutes=15)
        assert len(results) == 300 and all(r.status.value == "ok" for r in results)
        arm = [r for r in standin.request_log if r["path"].startswith("/subscriptions/")]
        assert sum(r["throttled"] for r in arm) <= 0.01 * len(arm)
        assert standin.overdrawn == 0
        writes = [r for r in arm if r["method"] == "PUT"]
        assert len(writes) == 300
        assert writes[-1]["t"] - writes[0]["t"] >= (300 - 200) / 10 - 1e-6  # spread at 10 writes per second
        assert az.world.throttled_minutes > 0  # and the world's durations include that wait


def test_the_documented_limits_are_the_models() -> None:
    """docs/azure-adapters.md's budget tables say what limits.py enforces."""
    import re
    from pathlib import Path

    from shared.adapters.azure.limits import ARM_BUCKETS, COMPUTE_POLICIES

    doc = (Path(__file__).resolve().parents[2] / "docs" / "azure-adapters.md").read_text()
    rows = {m.group(1): [c.strip() for c in m.group(2).split("|")]
            for m in re.finditer(r"^\| (\w+) \|(.*)\|$", doc, re.MULTILINE)}
    for kind, spec in ARM_BUCKETS.items():
        assert rows[kind.value][:2] == [f"{spec.capacity:g}", f"{spec.refill_per_second:g}"], kind
    for name, p in COMPUTE_POLICIES.items():
        res = ["-", "-"] if p.resource is None else [f"{x:g}" for x in p.resource]
        assert rows[name][:4] == [*res, *(f"{x:g}" for x in p.subscription)], name


def test_a_shadow_of_a_uniform_instance_carries_its_security_type(azure: Azure) -> None:
    [shadow] = azure.shadows.create([_plan(azure, API0)], rollout_id="r", spot_fallback="regular")
    assert shadow.state is ShadowState.RUNNING, shadow.message
    assert _shadow_vm_body(azure)["properties"]["securityProfile"]["securityType"] == "TrustedLaunch"


# ---------------------------------------------------------------------------------------------- instance limit
def test_a_capacity_above_the_scale_sets_maximum_is_refused_alike_on_both_backends() -> None:
    """100 in a single placement group, 1,000 otherwise (shared/domain/scale_set_limits.py): the stand-in answers
    400 InvalidParameter, the Azure adapter and the simulator's both raise CapacityUnavailable, nothing changes."""
    spg = {"fleet": {"scale_sets": [SMALL_FLEET["fleet"]["scale_sets"][0],
                                    {**SMALL_FLEET["fleet"]["scale_sets"][1], "single_placement_group": True}]}}
    az = Azure(AzureStandIn(make_world(spg)).start_in_process())
    sim = SimFleet(make_world(spg))
    for fleet in (az.fleet, sim):
        assert (fleet.max_capacity(WEB), fleet.max_capacity(API)) == (1000, 100)
        for target, over in ((WEB, 1001), (API, 101)):
            with pytest.raises(CapacityUnavailable) as refused:
                fleet.set_capacity(target, over)
            assert refused.value.status == 400 and f"got {over}" in str(refused.value)
        assert fleet.set_capacity(API, 100) == 100  # the maximum itself is accepted
    assert az.world.scale_sets["web"].capacity == sim.world.scale_sets["web"].capacity == 4
    status, body = _send(az.standin, "PATCH", WEB, {"sku": {"capacity": 1001}})
    assert status == 400 and body["error"]["code"] == "InvalidParameter" and "0..1000" in body["error"]["message"]
