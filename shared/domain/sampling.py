"""Stratified shadow sampling: every stratum of the fleet gets shadows, larger strata proportionally more."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .model import ShadowPlan, Stratum, VmInfo
from .policy import RolloutPolicy


def group_by_stratum(vms: Iterable[VmInfo]) -> dict[Stratum, list[VmInfo]]:
    groups: dict[Stratum, list[VmInfo]] = defaultdict(list)
    for vm in vms:
        groups[vm.stratum].append(vm)
    return dict(sorted(groups.items()))


def stable_rank(salt: str, key: str) -> int:
    """A deterministic pseudo-random rank, the same in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class ShadowSample:
    plans: list[ShadowPlan]
    reason: str


def plan_shadow_sample(vms: list[VmInfo], policy: RolloutPolicy, salt: str) -> ShadowSample:
    """Choose which production VMs to clone.

    Each stratum gets ``max(min_shadows_per_stratum, ceil(shadow_fraction * size))`` shadows, never more than
    it has VMs. When that exceeds ``max_shadows``, every stratum keeps one and the rest is cut from the
    largest allotments first, so no stratum is ever left without a shadow while the cap allows one each.
    """
    groups = group_by_stratum(vms)
    want = {s: min(len(g), max(policy.min_shadows_per_stratum, math.ceil(policy.shadow_fraction * len(g))))
            for s, g in groups.items()}
    total = sum(want.values())
    capped = ""
    if total > policy.max_shadows:
        budget = max(policy.max_shadows, len(groups))
        alloc = dict.fromkeys(want, 1)
        spare = budget - len(groups)
        for s in sorted(want, key=lambda s: (-want[s], s.key)):
            extra = min(want[s] - 1, spare)
            alloc[s] += extra
            spare -= extra
        want = alloc
        capped = f"; capped from {total} to {sum(want.values())} by max_shadows {policy.max_shadows}"
    plans: list[ShadowPlan] = []
    chosen_ids: set[str] = set()
    for stratum, members in groups.items():
        chosen = sorted(members, key=lambda vm: stable_rank(salt, vm.vm_id))[: want[stratum]]
        plans.extend(ShadowPlan(vm.vm_id, stratum.key, vm.sku, vm.zone) for vm in chosen)
        chosen_ids.update(vm.vm_id for vm in chosen)
    controls = _control_twins(groups, chosen_ids, policy.control_shadows_per_group, salt)
    reason = (f"{len(plans)} shadows for {len(groups)} strata of {len(vms)} VMs "
              f"(fraction {policy.shadow_fraction:g}, at least {policy.min_shadows_per_stratum} per stratum{capped})"
              f" and {len(controls)} untouched control twins")
    return ShadowSample(plans + controls, reason)


def _control_twins(groups: dict[Stratum, list[VmInfo]], taken: set[str], per_group: int,
                   salt: str) -> list[ShadowPlan]:
    """Per (scale set, SKU, image), twins that never get the change, preferably not a treated shadow's source."""
    by_group: dict[str, list[VmInfo]] = defaultdict(list)
    for stratum, members in groups.items():
        by_group[stratum.twin_group].extend(members)
    out: list[ShadowPlan] = []
    for _, members in sorted(by_group.items()):
        ranked = sorted(members, key=lambda vm: (vm.vm_id in taken, stable_rank(salt + ":twin", vm.vm_id)))
        out.extend(ShadowPlan(vm.vm_id, vm.stratum.key, vm.sku, vm.zone, "control") for vm in ranked[:per_group])
    return out


def split_waves(vms_by_stratum: Mapping[str, list[str]], fractions: tuple[float, ...], salt: str) -> list[list[str]]:
    """Each stratum's VMs in a stable pseudo-random order, cut at the cumulative fractions rounded up, so every
    stratum has a VM in the first wave; empty waves are dropped."""
    cumulative = []
    acc = 0.0
    for f in fractions:
        acc += f
        cumulative.append(min(1.0, acc))
    waves: list[list[str]] = [[] for _ in cumulative]
    for key in sorted(vms_by_stratum):
        members = sorted(vms_by_stratum[key], key=lambda v: stable_rank(salt, v))
        n = len(members)
        prev = 0
        for w, c in enumerate(cumulative):
            upto = n if w == len(cumulative) - 1 else min(n, math.ceil(c * n - 1e-9))
            waves[w].extend(members[prev:upto])
            prev = max(prev, upto)
    return [w for w in waves if w]
