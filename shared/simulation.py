"""Run one whole rollout on the simulator, through the real function app and the local Durable runner."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from . import bootstrap
from .adapters.recorded_operations import RecordedOperations
from .adapters.simulator.adapters import SIM_EPOCH, to_datetime, to_minute
from .adapters.simulator.scenario import Scenario
from .adapters.simulator.world import FleetWorld, vmss_resource_id
from .domain.kinds import DecisionKind
from .orchestration.rollout import ROLLOUT
from .ports import DiskSnapshots, FailureModel, Fleet, LongOperations, ShadowPool
from .runtime.chaos import Chaos, FaultDraws, mortal
from .runtime.interleave import InterleavedStore, Interleaver
from .runtime.local_durable import LocalDurableRunner, RunnerStats

STRATEGY = "shadow-predictive"


@dataclass
class SimulationRun:
    outcome: dict[str, Any]
    world: FleetWorld
    services: bootstrap.Services
    runner: LocalDurableRunner
    rollout_id: str
    interleaver: Interleaver | None = None

    @property
    def stats(self) -> RunnerStats:
        return self.runner.stats


def rollout_request(scenario: Scenario, rollout_id: str) -> dict[str, Any]:
    """The request a DevOps pipeline would send for this scenario's change to its whole fleet."""
    change = scenario.change
    return {
        "rollout_id": rollout_id,
        "targets": [vmss_resource_id(s.name) for s in scenario.fleet.scale_sets],
        "change": {"change_id": change.id, "kind": change.kind, "payload": change.payload},
        "policy": dict(scenario.policy),
        "requester": "simulator",
        "source": "cli",
    }


def mortal_services(svc: bootstrap.Services, chaos: Chaos) -> bootstrap.Services:
    """The services with the worker dying (seeded) right after any side effect: a cloud operation, a lease, or a
    write to the store, before the activity records or does anything else."""
    fleet = mortal(svc.fleet, chaos, ("apply_change", "restore_from_snapshots", "run_script", "set_capacity"))
    shadows = mortal(svc.shadows, chaos, ("create", "teardown"))
    snapshots = mortal(svc.snapshots, chaos, ("snapshot", "delete_tagged"))
    operations = over_ports(svc.operations, fleet, shadows, snapshots)
    return replace(
        svc, fleet=fleet, shadows=shadows, snapshots=snapshots,
        operations=mortal(operations, chaos, ("begin_apply", "begin_snapshots", "begin_restore", "begin_shadows")),
        leases=mortal(svc.leases, chaos, ("acquire", "release")),
        store=mortal(svc.store, chaos, ("update", "update_rows", "put_items", "put_rollout")),
    )


def over_ports(operations: LongOperations, fleet: Fleet, shadows: ShadowPool,
               snapshots: DiskSnapshots) -> LongOperations:
    """Long-running operations that go through these ports (an ``adapt`` or chaos may have replaced them)."""
    return operations.over(fleet, shadows, snapshots) if isinstance(operations, RecordedOperations) else operations


def simulate(scenario: Scenario, *, seed: int | None = None,
             on_status: Callable[[str, Any], None] | None = None,
             adapt: Callable[[bootstrap.Services], bootstrap.Services] | None = None,
             model: FailureModel | None = None, interleave: int | None = None,
             sequential: bool = False, chaos: Chaos | None = None) -> SimulationRun:
    """Run the shadow-predictive strategy on ``scenario`` and account for it from the ground truth.

    ``model`` replaces the shipped failure model; ``adapt`` may replace other services (a wrapped port).
    The activities of each fan-out interleave at their store calls in an order drawn from ``interleave``
    (default: the run's seed), so the same scenario and seed give the same outcome; ``sequential`` runs
    them one after another instead. ``chaos`` redelivers activities and crashes the worker at seeded points;
    the outcome then says how often.
    """
    world = FleetWorld(scenario, seed=seed)
    services = bootstrap.simulator_services(world, model=model)
    if adapt is not None:
        services = adapt(services)
        services.operations = over_ports(services.operations, services.fleet, services.shadows, services.snapshots)

    def set_clock(t: Any) -> None:
        world.clock.now = to_minute(t)

    def read_clock() -> Any:
        return to_datetime(world.clock.now)

    interleaver = None if sequential else Interleaver(world.seed if interleave is None else interleave,
                                                     set_clock=set_clock, read_clock=read_clock)
    if interleaver is not None:
        services = dataclasses.replace(services, store=InterleavedStore(services.store, interleaver))
    if chaos is not None:
        services = mortal_services(services, chaos)
    bootstrap.install(services)
    try:
        import function_app  # the real app: its blueprints, orchestrators and activities

        draws = FaultDraws(world.attempt_counters, world.set_attempt_counters)
        runner = LocalDurableRunner(function_app.app, start=SIM_EPOCH, set_clock=set_clock, read_clock=read_clock,
                                    on_status=on_status, chaos=chaos, draws=draws, interleaver=interleaver)
        rollout_id = f"{scenario.change.id}-s{world.seed}"
        request = rollout_request(scenario, rollout_id)
        runner.start_new(ROLLOUT, rollout_id, request)
        runner.run()
        inst = runner.instances[rollout_id]
        from .orchestration.cleanup import janitor

        swept = janitor(services, stopped={rollout_id} if inst.status != "Running" else set())
        record = services.store.get_rollout(rollout_id) or {}
        items = services.store.get_items(rollout_id, "vm")
        believed = {k: v["config"] for k, v in items.items() if "apply" in v or "apply_error" in v or v.get("applying")}
        finished = to_minute(inst.completed_at) if inst.completed_at else world.clock.now
        decisions = [{"minute": d["minute"], "kind": d["kind"], "reason": d["reason"]}
                     for d in services.store.decisions(rollout_id)]
        if inst.status == "Failed":
            decisions.append({"minute": round(finished, 1), "kind": DecisionKind.ORCHESTRATION_FAILED.value,
                              "reason": inst.error or "unknown error"})
        outcome = world.outcome(strategy=STRATEGY, believed=believed, halted=bool(record.get("halted")),
                                finished_at=finished, decisions=decisions)
        leaked = world.leaked()
        held = services.leases.holders(request["targets"])
        outcome["leaks"] = {"shadows": leaked["shadows"], "leases": len(held),
                            "extra_instances": leaked["extra_instances"], "snapshots": leaked["snapshots"]}
        if chaos is not None:
            outcome["chaos"] = chaos.stats.to_dict()
        outcome["janitor"] = {"shadows": len(swept.shadows), "leases": swept.leases,
                              "extra_instances": sum(swept.extra_instances.values())}
        if swept.reasons:
            outcome["decisions"].append({"minute": round(world.clock.now, 1), "kind": DecisionKind.JANITOR.value,
                                         "reason": "; ".join(swept.reasons)})
        return SimulationRun(outcome, world, services, runner, rollout_id, interleaver)
    finally:
        bootstrap.install(None)
