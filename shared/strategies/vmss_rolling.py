"""``vmss-rolling``: Azure's rolling upgrade policy, each scale set rolled on its own and in parallel.

Defaults, from the ``RollingUpgradePolicy`` reference of the Compute REST API / SDKs
(learn.microsoft.com/javascript/api/@azure-rest/arm-compute/rollingupgradepolicy, and the same text in
azure-mgmt-compute's ``RollingUpgradePolicy``):

* ``maxBatchInstancePercent`` 20: "The maximum percent of total virtual machine instances that will be upgraded
  simultaneously by the rolling upgrade in one batch. ... The default value for this parameter is 20%."
* ``maxUnhealthyInstancePercent`` 20: the share of *all* instances of the set that may be unhealthy; "This
  constraint will be checked prior to starting any batch."
* ``maxUnhealthyUpgradedInstancePercent`` 20: the share of *upgraded* instances found unhealthy; "This check
  will happen after each batch is upgraded. If this percentage is ever exceeded, the rolling update aborts."
* ``pauseTimeBetweenBatches`` PT0S (no pause); the batch's health probes settle for 5 minutes before the
  check (the contract's figure, scenarios contract §3).
* ``rollbackFailedInstancesOnPolicyBreach``: "Rollback failed instances to previous model if the Rolling Upgrade
  policy is violated." Opt-in in Azure (default false); on here, as the contract says.

Modelling choices (documented in bench/README.md):

* Instance health is the health probe's latest state (the Application Health extension reports each probe;
  Azure reads the current state at the check). A failed or hung upgrade of an instance counts as unhealthy.
* Every change kind is rolled as a model change this way; the apply itself is the scenario's (same latency as
  for every other strategy).
* Rolling back to the previous model is a reimage with the old model. The simulator restores from disk
  snapshots only, so each batch is snapshotted just before it is upgraded and a rollback is a restore (it takes a
  restore's time and is counted in ``snapshots_taken``).
* No watch after the last batch: once the last batch passes its check the upgrade is complete, and Azure does not
  look again (automatic instance repairs are a separate, opt-in feature).
"""

from __future__ import annotations

from typing import Any

from ..adapters.simulator.scenario import Scenario
from .base import PeerRun, Process, ceil_share, failed_applies, latest_probe_failed, percent

NAME = "vmss-rolling"
MAX_BATCH_INSTANCE_PERCENT = 20
MAX_UNHEALTHY_INSTANCE_PERCENT = 20
MAX_UNHEALTHY_UPGRADED_INSTANCE_PERCENT = 20
PAUSE_TIME_BETWEEN_BATCHES_MINUTES = 0.0
PROBE_SETTLE_MINUTES = 5.0
PROBE_LOOKBACK_MINUTES = 5.0
ROLLBACK_FAILED_INSTANCES_ON_POLICY_BREACH = True


def run(scenario: Scenario, seed: int | None = None) -> dict[str, Any]:
    peer = PeerRun(scenario, seed, NAME)
    peer.decide("plan", f"rolling upgrade of {len(peer.vms)} VMs in {len(peer.targets)} scale sets, each on its "
                       f"own: batches of {MAX_BATCH_INSTANCE_PERCENT}%, maxUnhealthyInstancePercent "
                       f"{MAX_UNHEALTHY_INSTANCE_PERCENT}, maxUnhealthyUpgradedInstancePercent "
                       f"{MAX_UNHEALTHY_UPGRADED_INSTANCE_PERCENT}, rollback of failed instances on a breach")
    peer.run([roll_scale_set(peer, name, [vm.vm_id for vm in vms]) for name, vms in peer.by_scale_set().items()])
    return peer.outcome()


def roll_scale_set(peer: PeerRun, name: str, members: list[str]) -> Process:
    """One scale set's rolling upgrade: check, upgrade a batch, let the probes settle, check, repeat."""
    order = peer.shuffled(members)
    size = ceil_share(MAX_BATCH_INSTANCE_PERCENT / 100, len(members))
    batches = [order[i:i + size] for i in range(0, len(order), size)]
    upgraded: list[str] = []
    failed: set[str] = set()
    for b, batch in enumerate(batches):
        # maxUnhealthyInstancePercent: all instances of the set, before the batch starts
        unhealthy = _unhealthy(peer, members)
        if 100 * len(unhealthy) > MAX_UNHEALTHY_INSTANCE_PERCENT * len(members):
            _breach(peer, name, f"before batch {b + 1}/{len(batches)}: {percent(len(unhealthy), len(members))} of "
                                f"the instances unhealthy > maxUnhealthyInstancePercent "
                                f"{MAX_UNHEALTHY_INSTANCE_PERCENT}", sorted(failed | (unhealthy & set(upgraded))))
            return
        peer.snapshot(batch)  # the previous model, for a rollback (see the module docstring)
        results = peer.apply(batch)
        failed.update(failed_applies(results))
        upgraded.extend(results)
        peer.decide("batch", f"scale set {name}: batch {b + 1}/{len(batches)} of {len(batch)} instances upgraded"
                             + (f", {len(failed_applies(results))} upgrades failed" if failed_applies(results) else ""))
        yield peer.now + PROBE_SETTLE_MINUTES
        # maxUnhealthyUpgradedInstancePercent: the upgraded instances, once the batch's probes have settled
        bad = failed | _unhealthy(peer, upgraded)
        if 100 * len(bad) > MAX_UNHEALTHY_UPGRADED_INSTANCE_PERCENT * len(upgraded):
            _breach(peer, name, f"after batch {b + 1}/{len(batches)}: {percent(len(bad), len(upgraded))} of the "
                                f"upgraded instances unhealthy > maxUnhealthyUpgradedInstancePercent "
                                f"{MAX_UNHEALTHY_UPGRADED_INSTANCE_PERCENT}", sorted(bad))
            return
        if PAUSE_TIME_BETWEEN_BATCHES_MINUTES:
            yield peer.now + PAUSE_TIME_BETWEEN_BATCHES_MINUTES
    peer.decide("finished", f"scale set {name}: rolling upgrade completed, {len(upgraded)} instances upgraded")


def _unhealthy(peer: PeerRun, vm_ids: list[str]) -> set[str]:
    if not vm_ids:
        return set()
    frame = peer.signals(vm_ids, PROBE_LOOKBACK_MINUTES)
    return {v for v, bad in zip(vm_ids, latest_probe_failed(frame), strict=True) if bad}


def _breach(peer: PeerRun, name: str, reason: str, failed: list[str]) -> None:
    peer.halted = True
    peer.decide("halt_in_production", f"scale set {name}: rolling upgrade aborted {reason}")
    if ROLLBACK_FAILED_INSTANCES_ON_POLICY_BREACH and failed:
        restored = peer.restore(failed)
        peer.decide("rollback_vm", f"scale set {name}: {len(restored)}/{len(failed)} failed instances rolled back "
                                   "to the previous model")
