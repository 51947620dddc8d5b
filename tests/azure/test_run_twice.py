"""At-least-once delivery against the stand-in: the Azure adapters look before they act, as the simulator's do.

A change already on a VM is that VM's result, not a second apply (the stand-in, like the world, refuses a
second one with 409); a Uniform instance already reimaged from its snapshot is recognised, not reimaged again;
and a whole rollout whose applies and restores each run twice, or die after each side effect, ends as the
undisturbed rollout on the simulator."""

from __future__ import annotations

from typing import Any

import pytest

from shared.adapters.simulator.scenario import parse_scenario
from shared.adapters.simulator.standin import AzureStandIn
from shared.adapters.simulator.standin.backend import simulate_azure_sdk
from shared.domain.model import ChangeSpec
from shared.simulation import simulate

from ..integration.test_at_least_once import EveryCrashPoint, Twice
from .conftest import API, Azure, make_world

SUB = "/subscriptions/00000000-0000-4000-8000-00000000c0de"
WEB0 = f"{SUB}/resourceGroups/rg-fleet/providers/Microsoft.Compute/virtualMachines/web_0"
API0 = f"{API}/virtualMachines/0"


def _writes(az: Azure, since: int) -> list[tuple[str, str]]:
    return [(m, p) for m, p in az.standin.requests[since:] if m != "GET"]


@pytest.mark.parametrize("kind", ["run-command", "extension", "model-update"])
def test_a_change_applied_again_answers_with_the_first_apply_and_sends_no_write(azure: Azure, kind: str) -> None:
    vms = [API0] if kind == "model-update" else [WEB0, API0]
    change = ChangeSpec("chg-1", kind, {"script": "echo change"})
    first = azure.fleet.apply_change(vms, change, timeout_minutes=15)
    assert [r.status.value for r in first] == ["ok"] * len(vms)
    before = len(azure.standin.requests)
    again = azure.fleet.apply_change(vms, change, timeout_minutes=15)
    assert [(r.vm_id, r.status, r.exit_code) for r in again] == [(r.vm_id, r.status, r.exit_code) for r in first]
    assert _writes(azure, before) == [], "the second run applied the change again"


def test_a_change_applied_again_to_more_vms_applies_only_the_new_ones(azure: Azure) -> None:
    change = ChangeSpec("chg-1", "run-command", {"script": "echo change"})
    azure.fleet.apply_change([WEB0], change, timeout_minutes=15)
    before = len(azure.standin.requests)
    results = azure.fleet.apply_change([WEB0, API0], change, timeout_minutes=15)
    assert [r.status.value for r in results] == ["ok", "ok"]
    assert [p.rsplit("/", 3)[-3] for _, p in _writes(azure, before)] == ["0"]  # API0's run command only


def test_a_failed_change_applied_again_is_still_the_same_failure() -> None:
    world = make_world({"change": {"id": "c", "truth": {"effects": [{"mode": "crash_on_apply"}]}}})
    with AzureStandIn(world) as standin:
        az = Azure(standin)
        for kind in ("run-command", "extension"):
            change = ChangeSpec(f"c-{kind}", kind, {"script": "x"})
            [first] = az.fleet.apply_change([API0 if kind == "extension" else WEB0], change, timeout_minutes=15)
            [again] = az.fleet.apply_change([API0 if kind == "extension" else WEB0], change, timeout_minutes=15)
            assert first.status.value == again.status.value == "failed", kind


@pytest.mark.parametrize("data_disks", [0, 2])
def test_a_uniform_restore_run_again_recognises_the_reimage_and_changes_nothing(data_disks: int) -> None:
    with AzureStandIn(make_world(), data_disks=data_disks) as standin:
        az = Azure(standin)
        [snap] = az.snapshots.snapshot([API0], tag="pre-r")
        az.fleet.apply_change([API0], ChangeSpec("chg-1", "extension", {"script": "x"}), timeout_minutes=15)
        [first] = az.fleet.restore_from_snapshots([snap])
        assert first.ok and first.attempts >= 1
        before = len(standin.requests)
        [again] = az.fleet.restore_from_snapshots([snap])
        assert again.ok and again.attempts == 0 and again.message.startswith("already restored from pre-r-api_0")
        assert _writes(az, before) == []


def test_a_uniform_restore_that_died_after_the_reimage_only_restores_the_data_disks() -> None:
    with AzureStandIn(make_world(), data_disks=2) as standin:
        az = Azure(standin)
        [snap] = az.snapshots.snapshot([API0], tag="pre-r")
        # the first run's reimage went through, then the worker died before the data disks
        az.fleet.client.virtual_machine_scale_set_vms.begin_reimage("rg-fleet", "api", "0").result()
        before = len(standin.requests)
        [result] = az.fleet.restore_from_snapshots([snap])
        assert result.ok and result.message.startswith("already restored")
        writes = _writes(az, before)
        assert not any(p.endswith("/reimage") for _, p in writes), "reimaged twice"
        disks = az.fleet.client.virtual_machine_scale_set_vms.get("rg-fleet", "api", "0").storage_profile.data_disks
        assert [d.lun for d in disks] == [0, 1] and all("restored-lun" in d.managed_disk.id for d in disks)


# two scale sets, Flexible and Uniform, a latent crash: waves apply, and rollbacks restore both kinds
BOTH_KINDS: dict[str, Any] = {
    "name": "run-twice-azure", "seed": 3,
    "fleet": {"scale_sets": [
        {"name": "web", "capacity": 10, "skus": {"Standard_D2s_v5": 1}},
        {"name": "api", "orchestration": "Uniform", "capacity": 10, "skus": {"Standard_D2s_v5": 1}}]},
    "change": {"id": "twice-1", "truth": {"effects": [{"mode": "latent_crash", "probability": 0.3,
                                                       "onset_minutes": 40}]}},
    "policy": {"production_watch_minutes": 120},
}


@pytest.fixture(scope="module")
def calm() -> dict[str, Any]:
    outcome = simulate(parse_scenario(BOTH_KINDS)).outcome
    assert outcome["vms"]["rolled_back"] > 0, "the scenario must restore VMs"
    return outcome


@pytest.mark.parametrize(("activity", "chaos"), [("apply_wave", EveryCrashPoint), ("restore_vms", EveryCrashPoint),
                                                 ("apply_to_shadows", EveryCrashPoint), ("restore_vms", Twice)])
def test_a_rollout_on_the_azure_adapters_whose_activity_runs_twice_ends_as_the_undisturbed_one(
        activity: str, chaos: type[Twice] | type[EveryCrashPoint], calm: dict[str, Any]) -> None:
    strike = chaos(activity)
    run = simulate_azure_sdk(parse_scenario(BOTH_KINDS), chaos=strike)
    assert strike.stats.crashes + strike.stats.redelivered > 0, f"{activity} never ran again"
    o = run.outcome
    assert (o["outcome"], o["vms"]) == (calm["outcome"], calm["vms"])
    assert o["vms"]["unknown_state"] == 0
    assert o["leaks"] == {"shadows": 0, "leases": 0, "extra_instances": 0, "snapshots": 0}
