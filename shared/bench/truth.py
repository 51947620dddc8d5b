"""What the benchmark needs to know of the truth beyond the outcome: is the change bad, and for how many VMs.

Like the accounting, this reads the ground truth, after the fact; no strategy sees it (except ``oracle``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..adapters.simulator.accounting import affected_if_applied
from ..adapters.simulator.scenario import Scenario
from ..adapters.simulator.world import FleetWorld


@dataclass(frozen=True)
class ChangeTruth:
    bad: bool
    """At least one production VM would be affected (scenarios contract §1): otherwise the change is good."""
    vms_affected: int
    """Production VMs the change would affect if it reached them at their typical (mean) utilisation."""


def change_truth(scenario: Scenario, seed: int) -> ChangeTruth:
    """The same for every strategy: an effect's ``load_above`` is judged at each VM's mean utilisation.

    (Whether a load-dependent effect really hits a VM depends on when a strategy reaches it; the benchmark needs a
    denominator that does not depend on the strategy.)
    """
    world = FleetWorld(scenario, seed=seed)
    n = world.n_production
    idx = np.arange(n, dtype=np.int64)
    affected = affected_if_applied(world, idx, world.t["m"][:n])
    return ChangeTruth(bool(affected.any()), int(affected.sum()))
