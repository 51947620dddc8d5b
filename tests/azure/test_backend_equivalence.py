"""``--backend azure-sdk`` (the Azure SDK adapters over HTTP against the stand-in) ends exactly as
``--backend sim`` for the same scenario and seed: identical outcome JSON without faults; identical
``outcome`` and ``vms`` with faults (the contract, §2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.adapters.azure.long_operations import AzureLongOperations
from shared.adapters.simulator.adapters import SimDiskSnapshots, SimFleet, SimShadowPool, SimTelemetry, to_datetime
from shared.adapters.simulator.operations import SimOperations
from shared.adapters.simulator.scenario import load_scenario
from shared.adapters.simulator.standin import AzureStandIn
from shared.adapters.simulator.standin.backend import simulate_azure_sdk
from shared.adapters.simulator.world import PRINCIPAL, WRITE, FleetWorld
from shared.domain.model import ChangeSpec, ShadowPlan, ShadowState
from shared.domain.operations import OperationState, OperationStatus
from shared.simulation import simulate

from ..conftest import SCENARIOS
from .conftest import API, WEB, Azure, make_world

FAULTS = Path(__file__).parent / "scenarios" / "arm-faults.yaml"


@pytest.mark.parametrize("name", ["good-change", "latent-crash", "fleet-wide-crash"])
def test_azure_sdk_backend_gives_the_same_outcome_json_as_the_simulator(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    sim = simulate(scenario).outcome
    azure = simulate_azure_sdk(scenario)
    assert json.dumps(azure.outcome, sort_keys=True) == json.dumps(sim, sort_keys=True)
    assert azure.services.fleet.__class__.__name__ == "AzureFleet"  # it really went through the Azure adapters


def test_with_arm_faults_outcome_and_vms_are_the_same() -> None:
    scenario = load_scenario(FAULTS)
    sim = simulate(scenario).outcome
    azure = simulate_azure_sdk(scenario).outcome
    assert (azure["outcome"], azure["vms"]) == (sim["outcome"], sim["vms"])
    # the faults did not make the run trivial: the latent crashes made the watch withdraw the change
    assert sim["outcome"] == "halted_in_production" and sim["vms"]["rolled_back"] > 0


def test_simulate_command_runs_the_azure_sdk_backend(tmp_path: Path) -> None:
    """The installed command, on a fourth scenario (a stratum skipped before production), with its request log."""
    exe = shutil.which("shadow-rollout", path=str(Path(sys.executable).parent))
    assert exe
    path = SCENARIOS / "crash-one-sku.yaml"
    log = tmp_path / "azure.jsonl"
    azure = subprocess.run([exe, "simulate", "--scenario", str(path), "--json", "--backend", "azure-sdk",
                            "--azure-log", str(log)], capture_output=True, text=True, timeout=600)
    assert azure.returncode == 0, azure.stderr
    assert azure.stdout == json.dumps(simulate(load_scenario(path)).outcome) + "\n"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    arm = [r for r in records if r["path"].startswith("/subscriptions/")]
    assert arm and set(records[0]) == {"t", "method", "path", "api_version", "status", "principal", "throttled"}
    assert sum(r["throttled"] for r in arm) <= 0.01 * len(arm)
    assert all(r["status"] != 400 for r in records), "the stand-in refused an adapter request"
    bad = subprocess.run([exe, "simulate", "--backend", "azure"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "azure-sdk" in bad.stderr and "Traceback" not in bad.stderr


def test_a_shadow_gets_the_same_draws_on_both_backends_whichever_chunk_creates_first() -> None:
    """Chunks create their shadows at the same time, so the pool's second shadow may be asked for before its
    first: on both backends each shadow is numbered by its plan's place in the pool (the snapshot's
    ``shadow-rollout-ordinal`` tag on the wire), so it gets the same simulated draws and gives the same telemetry.
    (Numbered by arrival, the stand-in's shadows swapped their memory levels and apply times, and 300-VM fleets
    parted at the bake.)"""
    web = [WEB.replace("virtualMachineScaleSets/web", f"virtualMachines/web_{k}") for k in (0, 1)]
    sim_world = make_world()
    az = Azure(AzureStandIn(make_world()).start_in_process())

    def plans(world: FleetWorld) -> list[ShadowPlan]:
        return [ShadowPlan(v, (info := world.vm_info(world.index_of(v))).stratum.key, info.sku, info.zone,
                           ordinal=k + 1) for k, v in enumerate(web)]

    made: dict[str, list[str]] = {"sim": [], "azure": []}
    for pool, world, key in ((SimShadowPool(sim_world), sim_world, "sim"), (az.shadows, az.world, "azure")):
        for plan in reversed(plans(world)):  # the second chunk's shadow first
            [shadow] = pool.create([plan], rollout_id="r-1", spot_fallback="regular")
            assert shadow.state is ShadowState.RUNNING, shadow.message
            made[key].append(shadow.shadow_id)
        world.clock.advance_to(40.0)
    assert [v.rsplit("/", 1)[-1] for v in made["sim"]] == [v.rsplit("/", 1)[-1] for v in made["azure"]]
    start, end = to_datetime(0.0), to_datetime(40.0)
    sim = SimTelemetry(sim_world).signals(made["sim"], start, end)
    wire = az.telemetry.signals(made["azure"], start, end)
    for name in ("mem_available_pct", "cpu_pct", "health_ok"):
        np.testing.assert_array_equal(wire.signals[name], sim.signals[name], err_msg=name)
    assert np.isfinite(sim.signals["mem_available_pct"][:, -5:]).any()  # the shadows were up and reporting


def test_an_operation_asked_about_after_it_ended_ends_when_arm_says_on_both_backends() -> None:
    """A step's operation may be asked about after it ended (a ``Retry-After`` in whole seconds, a busy host;
    the orchestrator used to ask every chunk at the longest ``Retry-After`` among them): its end is the
    ``endTime`` ARM reported (as the simulator's book records it), not when it was asked. (Ended when asked,
    every chunk of a wave ended with its slowest, the waves' starts moved and 2,000-VM fleets parted at the
    production watch's cadence.)"""
    change = ChangeSpec("chg-1", "run-command", {"script": "echo change"})
    web0 = WEB.replace("virtualMachineScaleSets/web", "virtualMachines/web_0")
    ends, now = [], 0.0
    for ops, world in _both_backends():
        began = ops.begin_apply("r-1:apply:w00c00", [web0], change, timeout_minutes=15)
        assert began.state is OperationState.RUNNING
        world.clock.advance_to(world.clock.now + 30.0)  # asked long after it ended
        [status] = ops.status([began.handle])
        assert status.state is OperationState.SUCCEEDED
        ends.append(status.ended_at)
        now = world.clock.now
    sim_end, azure_end = ends
    assert sim_end is not None and azure_end is not None
    assert azure_end == sim_end < to_datetime(now) - timedelta(minutes=20)


def _both_backends() -> list[tuple[SimOperations | AzureLongOperations, FleetWorld]]:
    """The same fleet's long operations on the simulator and on the Azure adapters over the stand-in."""
    sim_world = make_world()
    sim_ops = SimOperations(sim_world, SimFleet(sim_world), SimShadowPool(sim_world), SimDiskSnapshots(sim_world))
    az = Azure(AzureStandIn(make_world()).start_in_process())
    az_ops = AzureLongOperations(az.fleet, az.shadows, az.snapshots, lambda: to_datetime(az.world.clock.now))
    return [(sim_ops, sim_world), (az_ops, az.world)]


def _until_done(ops: SimOperations | AzureLongOperations, world: FleetWorld,
                status: OperationStatus) -> OperationStatus:
    while status.state is OperationState.RUNNING:  # asked back at each Retry-After, as the orchestrator does
        world.clock.advance_to(world.clock.now + status.retry_after_seconds / 60.0)
        [status] = ops.status([status.handle])
    assert status.state is OperationState.SUCCEEDED
    return status


def _restore_on_both(vms: list[str], *, drain_writes: int = 0) -> list[tuple[float, Any, FleetWorld]]:
    """Snapshot, change and restore ``vms`` as one rollback batch on each backend (the write buckets first
    drained by ``drain_writes`` writes); per backend, the batch's minutes, what it did and its world."""
    change = ChangeSpec("chg-1", "run-command", {"script": "echo change"})
    out = []
    for ops, world in _both_backends():
        snapped = _until_done(ops, world, ops.begin_snapshots("r-1:snap", vms, tag="r-1"))
        snaps = ops.snapshot_results(snapped.handle, vms)
        _until_done(ops, world, ops.begin_apply("r-1:apply", vms, change, timeout_minutes=15))
        began_at = world.clock.now
        world.budget.reserve([WRITE] * drain_writes, PRINCIPAL, began_at * 60.0)
        restored = _until_done(ops, world, ops.begin_restore("r-1:restore:b1", snaps, script="echo ok"))
        assert restored.ended_at is not None
        done = ops.restore_results(restored.handle, snaps)
        out.append(((restored.ended_at - to_datetime(began_at)).total_seconds() / 60.0,
                    ([(x.vm_id, x.ok, x.attempts) for x in done.results], done.scripts), world))
    return out


WEB0 = WEB.replace("virtualMachineScaleSets/web", "virtualMachines/web_0")
API0 = f"{API}/virtualMachines/0"


def test_a_rollback_batch_of_flexible_vms_and_uniform_instances_ends_when_its_slowest_restore_ends() -> None:
    """A rollback batch may hold Flexible VMs (disk swap: disk, deallocate, swap, start) and Uniform instances
    (reimage): the two chains are independent ARM operations, so on both backends they run side by side and the
    batch ends with its slowest restore (then the post-rollback script). (Run one after the other, the swaps and
    then the reimages, a mixed batch ended the sum of the two later, and 10,000-VM fleets, whose rollback batches
    hold instances of the Uniform sets, parted at the first such batch.)"""
    (sim_minutes, sim_out, sim_world), (azure_minutes, azure_out, _) = _restore_on_both([WEB0, API0])
    assert azure_out == sim_out and all(ok for _, ok, _ in sim_out[0])
    assert azure_minutes == pytest.approx(sim_minutes, abs=1e-6)
    # the case at hand: the swap and the reimage each took minutes, and the batch less than both in a row
    idx = sim_world.indices([WEB0, API0])
    web_took, api_took = sim_world.t["restore_done"][idx] - sim_world.t["restore_start"][idx]
    assert min(web_took, api_took) > 1.0 and sim_minutes < web_took + api_took


def test_when_the_write_budget_is_short_a_batchs_restores_take_it_in_the_order_their_requests_reach_arm() -> None:
    """The adapters begin a batch's swap chain before its reimages, so with the write bucket drained the Uniform
    instances get their tokens after the Flexible VMs on the wire; the simulator's world takes the budget in
    that order too, whatever the batch's order, and each VM's restore ends at the same time on both backends.
    (Taken in the batch's order, the 10,000-VM fleet's last rollback batch, 9,673 VMs under the write budget,
    ended 0.3 min later on the Azure SDK adapters.)"""
    webs = [WEB.replace("virtualMachineScaleSets/web", f"virtualMachines/web_{k}") for k in range(4)]
    apis = [f"{API}/virtualMachines/{k}" for k in range(3)]
    vms = [apis[0], webs[0], apis[1], webs[1], apis[2], webs[2], webs[3]]  # instances first in the batch
    (sim_minutes, sim_out, sim_world), (azure_minutes, azure_out, az_world) = _restore_on_both(vms, drain_writes=200)
    assert azure_out == sim_out and [v for v, _, _ in sim_out[0]] == vms
    assert azure_minutes == pytest.approx(sim_minutes, abs=1e-6)
    idx = sim_world.indices(vms)
    np.testing.assert_allclose(az_world.t["restore_done"][idx], sim_world.t["restore_done"][idx], rtol=0, atol=1e-6)
    # the budget did bind: the restores waited for their tokens, the instances behind the swaps
    waited = sim_world.t["restore_done"][idx] - sim_world.t["restore_start"][idx]
    assert sim_world.throttled_minutes > 0 and waited.max() > 5.0
