"""``simulate --backend azure-sdk``: the same rollout, through the Azure SDK adapters, over the stand-in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ....bootstrap import Services, azure_services
from ....runtime.chaos import Chaos
from ...azure.clients import AzureSettings
from ..adapters import SimFleet
from ..scenario import Scenario
from ..world import FLEET_RG, SHADOW_RG, SUBSCRIPTION, FleetWorld, vmss_resource_id
from .server import AzureStandIn


def standin_settings(standin: AzureStandIn) -> AzureSettings:
    """Settings for the adapters against ``standin``: in process if it was started so, else over its socket."""
    from .server import InProcessAdapter

    return AzureSettings.for_standin(standin.url, subscription_id=SUBSCRIPTION, location=standin.world.region,
                                     fleet_resource_group=FLEET_RG, shadow_resource_group=SHADOW_RG,
                                     pacing_clock=standin.request_clock,
                                     http_adapter=InProcessAdapter(standin) if standin.in_process else None)


def azure_sdk_services(world: FleetWorld, sim: Services, started: list[AzureStandIn],
                       azure_log: IO[str] | None = None) -> Services:
    """Azure adapters aimed at a stand-in over ``world``; the store, model and clock stay the simulator's."""
    standin = AzureStandIn(world)
    standin.azure_log = azure_log
    standin.start_in_process()
    started.append(standin)
    return azure_services(standin_settings(standin), store=sim.store, model=sim.model, now=sim.now)


def simulate_azure_sdk(scenario: Scenario, *, seed: int | None = None,
                       on_status: Callable[[str, Any], None] | None = None, azure_log: Path | None = None,
                       chaos: Chaos | None = None) -> Any:
    """Run :func:`shared.simulation.simulate` with the Azure SDK adapters against the stand-in; ``azure_log``
    gets one JSON line per request (t, method, path, api_version, status, principal, throttled). ``chaos``
    redelivers activities and crashes the worker, as on the simulator's own adapters."""
    from ....simulation import simulate

    started: list[AzureStandIn] = []
    log = azure_log.open("w", encoding="utf-8") if azure_log is not None else None

    def adapt(sim: Services) -> Services:
        assert isinstance(sim.fleet, SimFleet)
        return azure_sdk_services(sim.fleet.world, sim, started, log)

    try:
        return simulate(scenario, seed=seed, on_status=on_status, adapt=adapt, chaos=chaos)
    finally:
        for s in started:
            s.stop()
        if log is not None:
            log.close()


def serve_standin(scenario: Scenario, *, port: int, workdir: Path, speed: float = 1.0,
                  azure_log: IO[str] | None = None) -> tuple[AzureStandIn, dict[str, Any]]:
    """The stand-in for a scenario's fleet over HTTPS (a local CA in ``workdir``), its clock on the wall clock;
    returns it with the line ``shadow-rollout standin`` prints first."""
    from .tls import make_local_tls

    tls = make_local_tls(workdir)
    standin = AzureStandIn(FleetWorld(scenario))
    standin.azure_log = azure_log
    standin.serve_realtime(speed=speed)
    standin.start(port=port, tls=(str(tls.cert), str(tls.key)))
    info = {"arm": standin.url, "metrics": standin.url, "logs": f"{standin.url}/v1", "ca_bundle": str(tls.ca_bundle),
            "subscription_id": SUBSCRIPTION, "resource_groups": [FLEET_RG, SHADOW_RG],
            "scale_sets": [vmss_resource_id(s.name) for s in scenario.fleet.scale_sets]}
    return standin, info
