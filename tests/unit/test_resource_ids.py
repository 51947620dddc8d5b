"""One ARM resource id parser, ARM's naming rules per segment, and case-insensitive identity everywhere."""

from __future__ import annotations

import pytest

from shared.adapters.simulator.adapters import SimFleet
from shared.adapters.simulator.scenario import parse_scenario
from shared.adapters.simulator.world import SUBSCRIPTION, FleetWorld, vmss_resource_id
from shared.domain.errors import InvalidInput, NotFound, RequestError
from shared.domain.request import parse_request
from shared.domain.resource_id import parse_group_id, parse_scale_set_id
from shared.domain.scope import Scope, check_scope

RG = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-fleet"
WEB = f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/web"


@pytest.mark.parametrize(("text", "why"), [
    (WEB + "\n", "breaks ARM's naming rules"),  # a trailing newline ($ would have matched before it)
    (f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/..", "breaks ARM's naming rules"),
    (f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/.", "breaks ARM's naming rules"),
    (f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/web%2Fx", "breaks ARM's naming rules"),
    (f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/web?x", "breaks ARM's naming rules"),
    (f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/web#x", "breaks ARM's naming rules"),
    (f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/\u0430pi", "breaks ARM's naming rules"),
    (f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/web-", "breaks ARM's naming rules"),
    (f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/" + "w" * 65, "breaks ARM's naming rules"),
    (f"{RG}./providers/Microsoft.Compute/virtualMachineScaleSets/web", "resource group 'rg-fleet.'"),
    ("/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/web", "not a subscr"),
    (f"{RG}/providers/Microsoft.Compute/virtualMachines/web", "not a virtual machine scale set resource id"),
    (f"{WEB}/virtualMachines/0", "not a virtual machine scale set resource id"),
    (WEB.replace("/web", "/web\x00"), "breaks ARM's naming rules"),
])
def test_scale_set_ids_breaking_arm_naming_rules_are_refused_naming_the_segment(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("?", r"\?").replace(".", r"\.")):
        parse_scale_set_id(text)


def test_ids_differing_only_in_case_are_one_resource() -> None:
    upper = WEB.replace("rg-fleet", "RG-FLEET").replace("/web", "/WEB").replace("Microsoft.", "microsoft.")
    assert parse_scale_set_id(upper).key == parse_scale_set_id(WEB).key
    assert parse_group_id(RG.upper().replace("SUBSCRIPTIONS", "subscriptions")).group_key == parse_scale_set_id(
        WEB).group_key
    with pytest.raises(RequestError, match="targets must be distinct"):
        parse_request({"rollout_id": "r", "targets": [WEB, upper], "change": {"change_id": "c"}})
    assert check_scope([upper], Scope(resource_groups=[RG])).allowed


def test_nan_and_infinity_in_a_policy_are_refused() -> None:
    for bad in (float("nan"), float("inf")):
        with pytest.raises(InvalidInput, match=r"wave_fractions.*finite number"):
            parse_request({"rollout_id": "r", "targets": [WEB], "change": {"change_id": "c"},
                           "policy": {"wave_fractions": [bad, 1.0]}})


def test_the_simulator_honours_subscription_resource_group_and_case() -> None:
    world = FleetWorld(parse_scenario({"name": "s", "fleet": {"scale_sets": [{"name": "web", "capacity": 2}]},
                                       "change": {"id": "c"}}))
    fleet = SimFleet(world)
    assert len(fleet.inventory([vmss_resource_id("WEB")])) == 2
    with pytest.raises(NotFound, match="not found in subscription 11111111"):
        fleet.inventory([vmss_resource_id("web").replace(SUBSCRIPTION, "11111111-2222-4333-8444-555555555555")])
    with pytest.raises(NotFound, match="resource group rg-other"):
        fleet.set_capacity(vmss_resource_id("web").replace("rg-fleet", "rg-other"), 5)
    assert fleet.capacity(vmss_resource_id("web")) == 2


def test_the_simulator_finds_a_vm_by_its_id_in_any_case() -> None:
    world = FleetWorld(parse_scenario({"name": "s", "fleet": {"scale_sets": [{"name": "web", "capacity": 2}]},
                                       "change": {"id": "c"}}))
    vm = world.ids[1]
    assert world.index_of(vm.upper()) == world.index_of(vm) == 1
    assert vm.swapcase() in world._by_id and world._by_id.get(vm.swapcase()) == 1
    assert world.ids[1] == vm  # the world's own spelling is what it hands out
    with pytest.raises(NotFound):
        world.index_of(vm + "x")
