"""``no-guard``: every VM at once, nothing watched, nothing rolled back (scenarios contract §3).

The ceiling of harm against which the guards are measured; it takes no snapshot.
"""

from __future__ import annotations

from typing import Any

from ..adapters.simulator.scenario import Scenario
from .base import PeerRun, failed_applies

NAME = "no-guard"


def run(scenario: Scenario, seed: int | None = None) -> dict[str, Any]:
    peer = PeerRun(scenario, seed, NAME)
    results = peer.apply([vm.vm_id for vm in peer.vms])
    peer.decide("finished", f"changed {len(results)} VMs at once; {len(failed_applies(results))} applies failed, "
                            "none rolled back")
    return peer.outcome()
