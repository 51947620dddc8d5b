"""The adapters' request bodies have ARM's shapes: compared with small fixtures written after the examples in
Azure/azure-rest-api-specs (``fixtures/arm_request_shapes.json`` names each source)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.simulator.adapters import to_datetime
from shared.domain.model import ChangeSpec, ShadowPlan

from .conftest import API, WEB, Azure

SHAPES = json.loads((Path(__file__).parent / "fixtures" / "arm_request_shapes.json").read_text())
WEB0 = WEB.replace("virtualMachineScaleSets/web", "virtualMachines/web_0")
API0 = f"{API}/virtualMachines/0"


def paths(value: Any, prefix: str = "") -> set[str]:
    """Key paths of a JSON value; list items share one path; free-form maps (tags, settings) are leaves."""
    if isinstance(value, dict) and not prefix.endswith(("tags", "settings")):
        out = {prefix} if prefix else set()
        for k, v in value.items():
            out |= paths(v, f"{prefix}.{k}" if prefix else k)
        return out
    if isinstance(value, list):
        return {prefix}.union(*(paths(v, f"{prefix}[]") for v in value))
    return {prefix}


def get(value: Any, path: str) -> Any:
    for part in path.split("."):
        value = value[part]
    return value


def _sent(az: Azure, method: str, pattern: str) -> Any:
    for m, p, body in az.standin.bodies:
        if m == method and re.search(pattern, p, re.IGNORECASE):
            return body
    raise AssertionError(f"no {method} {pattern} was sent")


def _everything(az: Azure) -> None:
    """One of each operation."""
    info = az.world.vm_info(az.world.index_of(WEB0))
    [shadow] = az.shadows.create([ShadowPlan(WEB0, info.stratum.key, info.sku, info.zone)], rollout_id="r",
                                 spot_fallback="regular")
    az.world.clock.now += 5
    az.load.drive({shadow.shadow_id: 0.5})
    snaps = az.snapshots.snapshot([WEB0, API0], tag="pre-r")
    az.fleet.apply_change([WEB0], ChangeSpec("c1", "run-command", {"script": "echo 1"}), timeout_minutes=15)
    az.fleet.apply_change([API0], ChangeSpec("c2", "extension", {"script": "echo 2"}), timeout_minutes=15)
    az.fleet.apply_change([f"{API}/virtualMachines/1"], ChangeSpec("c3", "model-update", {"script": "echo 3"}),
                          timeout_minutes=15)
    az.fleet.restore_from_snapshots(snaps)
    az.fleet.run_script([WEB0], "true")
    az.fleet.set_capacity(WEB, 5)
    az.shadows.teardown([shadow.shadow_id])
    az.telemetry.signals([WEB0], to_datetime(0), to_datetime(5))


REQUESTS = {
    "snapshot_create": ("PUT", r"rg-fleet/.*/snapshots/"),
    "disk_create_copy": ("PUT", r"/disks/"),
    "vm_create_spot": ("PUT", r"rg-shadow-pool/providers/Microsoft.Compute/virtualMachines/[^/]+$"),
    "run_command_managed": ("PUT", r"/runCommands/"),
    "run_command_action": ("POST", r"/runCommand$"),
    "vm_extension": ("PUT", r"/extensions/"),
    "vmss_model_update": ("PATCH", r"virtualMachineScaleSets/api$"),
    "vmss_capacity": ("PATCH", r"virtualMachineScaleSets/web$"),
    "vmss_update_instances": ("POST", r"/manualupgrade$"),
    "vmss_delete_instances": ("POST", r"virtualMachineScaleSets/shadow-pool/delete$"),
    "vm_swap_os_disk": ("PATCH", r"virtualMachines/web_0$"),
    "vmss_flexible_pool": ("PUT", r"virtualMachineScaleSets/shadow-pool$"),
    "metrics_batch": ("POST", r"metrics:getBatch$"),
    "logs_query": ("POST", r"/query$"),
}


@pytest.fixture(scope="module")
def sent() -> dict[str, Any]:
    from shared.adapters.simulator.standin import AzureStandIn

    from .conftest import make_world

    with AzureStandIn(make_world()) as standin:
        az = Azure(standin)
        _everything(az)
        return {name: _sent(az, m, p) for name, (m, p) in REQUESTS.items()}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_request_body_has_the_shape_of_the_arm_example(sent: dict[str, Any], name: str) -> None:
    shape = SHAPES[name]
    ours = paths(sent[name])
    allowed = paths(shape["request"])
    assert ours <= allowed, f"{name}: keys not in {shape['source']}: {sorted(ours - allowed)}"
    for path, value in shape["must"].items():
        assert get(sent[name], path) == value, f"{name}: {path}"


def test_every_fixture_is_compared() -> None:
    assert set(REQUESTS) == {k for k in SHAPES if not k.startswith("_")}
