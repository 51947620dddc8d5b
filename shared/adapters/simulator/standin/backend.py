"""``simulate --backend azure-sdk``: the same rollout, through the Azure SDK adapters, over the stand-in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ....bootstrap import Services, azure_services
from ...azure.clients import AzureSettings
from ..adapters import SimFleet
from ..scenario import Scenario
from ..world import FLEET_RG, SHADOW_RG, SUBSCRIPTION, FleetWorld
from .server import AzureStandIn


def standin_settings(standin: AzureStandIn) -> AzureSettings:
    return AzureSettings.for_standin(standin.url, subscription_id=SUBSCRIPTION, location=standin.world.region,
                                     fleet_resource_group=FLEET_RG, shadow_resource_group=SHADOW_RG,
                                     pacing_clock=standin.request_clock)


def azure_sdk_services(world: FleetWorld, sim: Services, started: list[AzureStandIn]) -> Services:
    """Azure adapters aimed at a stand-in over ``world``; the store, model and clock stay the simulator's."""
    standin = AzureStandIn(world).start()
    started.append(standin)
    return azure_services(standin_settings(standin), store=sim.store, model=sim.model, now=sim.now)


def simulate_azure_sdk(scenario: Scenario, *, seed: int | None = None,
                       on_status: Callable[[str, Any], None] | None = None) -> Any:
    """Run :func:`shared.simulation.simulate` with the Azure SDK adapters against the stand-in."""
    from ....simulation import simulate

    started: list[AzureStandIn] = []

    def adapt(sim: Services) -> Services:
        assert isinstance(sim.fleet, SimFleet)
        return azure_sdk_services(sim.fleet.world, sim, started)

    try:
        return simulate(scenario, seed=seed, on_status=on_status, adapt=adapt)
    finally:
        for s in started:
            s.stop()
