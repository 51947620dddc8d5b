"""How many instances a scale set may hold: a scale-out above it is refused by ARM, so plans stop there.

- Uniform orchestration with ``singlePlacementGroup`` true: one placement group, "of max size 100 virtual
  machines" (the REST property's description, e.g. learn.microsoft.com/dotnet/api/
  azure.resourcemanager.compute.models.virtualmachinescalesetproperties.singleplacementgroup).
- Uniform with ``singlePlacementGroup`` false (a "large" scale set): "a capacity of up to 1,000 VMs"
  (learn.microsoft.com/azure/virtual-machine-scale-sets/virtual-machine-scale-sets-placement-groups).
- Flexible orchestration: "you can scale up to 1000 instances", and ``singlePlacementGroup`` must be false
  (learn.microsoft.com/azure/virtual-machines/flexible-virtual-machine-scale-sets-migration-resources).

The REST spec's ``sku.capacity`` ("the number of virtual machines in the scale set") carries no maximum itself:
the limit is the service's, which is why it is kept here, with its sources.
"""

from __future__ import annotations

from typing import NamedTuple

SINGLE_PLACEMENT_GROUP_MAX_INSTANCES = 100
LARGE_SCALE_SET_MAX_INSTANCES = 1000
"""Uniform with ``singlePlacementGroup`` false, and every Flexible scale set."""


class ScaleSetSize(NamedTuple):
    """A scale set's instance count and the most it may hold, as one read of it gives both."""

    capacity: int
    maximum: int


def max_instances(orchestration: str, single_placement_group: bool | None) -> int:
    """The most instances ARM lets the scale set hold. A Uniform set that does not say is taken as a single
    placement group (the lower limit: a plan under it is never refused)."""
    if orchestration == "Flexible":
        return LARGE_SCALE_SET_MAX_INSTANCES
    if single_placement_group is False:
        return LARGE_SCALE_SET_MAX_INSTANCES
    return SINGLE_PLACEMENT_GROUP_MAX_INSTANCES
