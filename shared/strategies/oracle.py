"""``oracle``: knows the truth, changes every VM the change would not affect and no other (scenarios contract §3).

The floor, not a competitor: it is the only strategy that reads the ground truth (through
:func:`~shared.adapters.simulator.accounting.affected_if_applied`, the same conditions as the simulator's apply,
evaluated at the utilisation of the moment it applies). It changes all the unaffected VMs at once, so it takes
no snapshot and needs no rollback; the affected VMs are left on the old configuration.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..adapters.simulator.accounting import affected_if_applied
from ..adapters.simulator.scenario import Scenario
from .base import PeerRun

NAME = "oracle"


def run(scenario: Scenario, seed: int | None = None) -> dict[str, Any]:
    peer = PeerRun(scenario, seed, NAME)
    world = peer.world
    ids = [vm.vm_id for vm in peer.vms]
    idx = world.indices(ids)
    util = world.utilisation(idx, np.array([int(peer.now)]))[:, 0]
    affected = affected_if_applied(world, idx, util)
    safe = [v for v, a in zip(ids, affected, strict=True) if not a]
    peer.apply(safe)
    peer.decide("finished", f"changed the {len(safe)} VMs the change does not affect; left {int(affected.sum())} "
                            "affected VMs on the old configuration")
    return peer.outcome()
