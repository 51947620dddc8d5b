"""``threshold-only``: a concurrency-limited push that stops at an error threshold; what the shadow idea extends.

The contract (scenarios contract §3): batches of 10% of the fleet at a time; stop when failed applies plus
unhealthy changed VMs exceed 5% of the changed VMs; roll back the failed ones. Its everyday counterpart is
Ansible's ``serial: "10%"`` with ``max_fail_percentage: 5`` (Ansible docs, "Controlling playbook execution:
strategies and more"), with snapshots added so that a failed VM can be restored.

Choices, each the project's own so that the comparison isolates what the shadows add (bench/README.md):

* after each batch, the health probes are watched for 10 minutes (the project's ``wave_watch_minutes``) before
  the check; a VM is unhealthy when its probe failed in at least 3 of the last 5 minutes (the project's
  ``unhealthy_probe_minutes`` / ``health_window_minutes``), so one benign failed probe is not a failure;
* failures are counted over the whole rollout so far (a VM rolled back still counts), and every failed VM found
  at a check is rolled back from its pre-change snapshot, whether or not the threshold is crossed;
* no watch after the last batch's check: the push is over.
"""

from __future__ import annotations

from typing import Any

from ..adapters.simulator.scenario import Scenario
from ..domain.policy import DEFAULT_POLICY
from .base import PeerRun, Process, ceil_share, failed_applies, percent, probe_failures

NAME = "threshold-only"
BATCH_SHARE = 0.10
ERROR_THRESHOLD = 0.05
WATCH_MINUTES = float(DEFAULT_POLICY.wave_watch_minutes)
UNHEALTHY_PROBES = DEFAULT_POLICY.unhealthy_probe_minutes
HEALTH_WINDOW_MINUTES = float(DEFAULT_POLICY.health_window_minutes)


def run(scenario: Scenario, seed: int | None = None) -> dict[str, Any]:
    peer = PeerRun(scenario, seed, NAME)
    peer.run([push(peer)])
    return peer.outcome()


def push(peer: PeerRun) -> Process:
    order = peer.shuffled([vm.vm_id for vm in peer.vms])
    size = ceil_share(BATCH_SHARE, len(order))
    batches = [order[i:i + size] for i in range(0, len(order), size)]
    peer.decide("plan", f"{len(batches)} batches of {size} VMs ({BATCH_SHARE:.0%} of the fleet); stop when failed "
                        f"applies plus unhealthy changed VMs exceed {ERROR_THRESHOLD:.0%} of the changed VMs")
    changed: list[str] = []
    failed: set[str] = set()
    for b, batch in enumerate(batches):
        peer.snapshot(batch)
        results = peer.apply(batch)
        changed.extend(results)
        new_failures = set(failed_applies(results))
        if not new_failures:  # a failed apply is judged at once; otherwise watch the batch first
            yield peer.now + WATCH_MINUTES
        live = [v for v in changed if v not in failed and v not in new_failures]
        if live:
            frame = peer.signals(live, HEALTH_WINDOW_MINUTES)
            new_failures |= {v for v, n in zip(live, probe_failures(frame), strict=True) if n >= UNHEALTHY_PROBES}
        failed |= new_failures
        if new_failures:
            restored = peer.restore(sorted(new_failures))
            peer.decide("rollback_vm", f"batch {b + 1}/{len(batches)}: {len(restored)}/{len(new_failures)} failed "
                                       "VMs rolled back")
        if len(failed) > ERROR_THRESHOLD * len(changed):
            peer.halted = True
            peer.decide("halt_in_production", f"after batch {b + 1}/{len(batches)}: "
                                              f"{percent(len(failed), len(changed))} of the changed VMs failed > "
                                              f"threshold {ERROR_THRESHOLD:.0%}")
            return
        peer.decide("continue", f"after batch {b + 1}/{len(batches)}: {percent(len(failed), len(changed))} of the "
                                f"changed VMs failed <= {ERROR_THRESHOLD:.0%}")
    peer.decide("finished", f"pushed to {len(changed)} VMs, {len(failed)} rolled back")
