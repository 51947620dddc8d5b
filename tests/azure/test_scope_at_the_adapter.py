"""Scope at the adapter boundary: a mutating call on a target outside the configured scope is refused before
anything reaches ARM, and a target in another subscription is never acted on in the app's own subscription."""

from __future__ import annotations

import json

import pytest

from shared.adapters.azure.compute import AzureFleet
from shared.adapters.simulator.world import SUBSCRIPTION
from shared.domain.errors import OutOfScope
from shared.domain.model import ChangeSpec
from shared.intake.config import CONFIG_JSON_SETTING, CONFIG_PATH_SETTING

from .conftest import WEB, Azure

OTHER_SUB = "11111111-2222-4333-8444-555555555555"


def _scoped(monkeypatch: pytest.MonkeyPatch, scope: dict[str, list[str]]) -> None:
    monkeypatch.setenv(CONFIG_JSON_SETTING, json.dumps({"scope": scope}))
    monkeypatch.delenv(CONFIG_PATH_SETTING, raising=False)


def test_set_capacity_outside_the_scope_is_refused_and_sends_nothing(azure: Azure,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _scoped(monkeypatch, {"resource_groups": [f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-elsewhere"]})
    fleet = AzureFleet(azure.settings)
    with pytest.raises(OutOfScope, match="set_capacity refused: 1 target"):
        fleet.set_capacity(WEB, 9)
    assert azure.calls("PATCH", "virtualMachineScaleSets/web") == 0
    assert azure.calls("PUT", "virtualMachineScaleSets/web") == 0


def test_a_target_in_another_subscription_is_never_acted_on_in_the_apps_own(azure: Azure,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _scoped(monkeypatch, {"subscriptions": [SUBSCRIPTION]})
    elsewhere = WEB.replace(SUBSCRIPTION, OTHER_SUB)
    fleet = AzureFleet(azure.settings)
    vm = fleet.inventory([WEB])[0].vm_id.replace(SUBSCRIPTION, OTHER_SUB)
    with pytest.raises(OutOfScope, match="outside the configured scope"):
        fleet.apply_change([vm], ChangeSpec("c1", "run-command", {"script": "echo"}), timeout_minutes=5)
    with pytest.raises(OutOfScope):
        fleet.set_capacity(elsewhere, 9)
    assert azure.calls("PUT", "runCommands") == 0 and azure.calls("PATCH", "virtualMachineScaleSets") == 0


def test_in_scope_call_goes_to_the_client_of_its_own_subscription(azure: Azure,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _scoped(monkeypatch, {"subscriptions": [SUBSCRIPTION, OTHER_SUB]})
    fleet = AzureFleet(azure.settings)
    assert fleet.set_capacity(WEB, 5) == 5
    other = fleet.guard.client_for([WEB.replace(SUBSCRIPTION, OTHER_SUB)], "set_capacity")
    assert other is not fleet.guard.client_for([WEB], "set_capacity")
    assert other._config.subscription_id == OTHER_SUB  # one client per subscription
