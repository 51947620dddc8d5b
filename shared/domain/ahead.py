"""Production snapshots taken during the bake, so that production starts without waiting for them.

Why: a VM is changed only after its pre-change snapshot exists. Taken after the decision (the at-risk VMs in
``prepare``, before any wave), those snapshots were minutes of waiting between the end of the bake and the first
change. A snapshot changes nothing on the VM, so it is safe before the decision; it costs money, so only the VMs
that will need one if production goes ahead are taken: those the current look predicts at risk and, when the
policy asks (``first_wave_snapshots_during_bake``), those of the first wave as the largest first share any risk
level plans (every level cuts each stratum's VMs in the same salted order, so that wave holds the first wave
whatever the decision's level). The first wave is off by default: measured on the held-out families, it moved
production about a minute earlier without shortening a good change (the last wave waits for the shadows' lead),
and the earlier checks of the waves turned a borderline bad change into a missed one. A VM the decision skips
keeps its snapshot until the rollout's snapshots are deleted with the rest; when the rollout ends before changing
any VM, they are deleted (``discard_snapshots``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .decisions import Decision
from .kinds import DecisionKind
from .sampling import split_waves


@dataclass(frozen=True)
class SnapshotsAhead:
    """The VMs to snapshot now (not chosen before), and the decision saying why; no decision when none."""

    vm_ids: tuple[str, ...]
    decision: Decision | None


def snapshots_ahead(included_by_stratum: Mapping[str, list[str]], at_risk: Iterable[str], chosen: Iterable[str],
                    first_shares: Iterable[float], salt: str, bake_minute: float) -> SnapshotsAhead:
    """Which production VMs to snapshot during the bake, at one look.

    ``included_by_stratum``: the VMs this look would let proceed, by stratum; ``at_risk``: those it predicts at
    risk (or in an ambiguous stratum); ``chosen``: VMs already chosen at an earlier look; ``first_shares``: the
    first wave's share of each risk level's schedule; ``salt``: the waves' salt (the rollout id), so that the cut
    is the one the waves will make."""
    included = {v for vs in included_by_stratum.values() for v in vs}
    done = set(chosen)
    risky = sorted(v for v in set(at_risk) if v in included)
    share = min(1.0, max(first_shares, default=0.0))  # no shares: the at-risk VMs only
    first: list[str] = []
    if share > 0 and included:
        waves = split_waves(included_by_stratum, (share, 1.0 - share) if share < 1.0 else (1.0,), salt)
        first = sorted(waves[0]) if waves else []
    wanted = set(risky) | set(first)
    new = tuple(sorted(wanted - done))
    if not new:
        return SnapshotsAhead((), None)
    risky_new = len(set(risky) - done)
    first_new = len(set(first) - done - set(risky))
    first_part = (f", {first_new} more of the first wave at the largest first share any risk level plans "
                  f"({share:.0%} of each stratum's {len(included)} included VMs)" if share > 0 else "")
    reason = (f"bake minute {bake_minute:.0f}: {len(new)} production VMs snapshotted before the decision, so the "
              f"first changes need not wait for them: {risky_new} predicted at risk{first_part}; {len(done)} chosen "
              "earlier; deleted if no VM is changed")
    return SnapshotsAhead(new, Decision(DecisionKind.SNAPSHOT_AHEAD, reason, data={
        "vms": len(new), "at_risk": risky_new, "first_wave": first_new, "share": round(share, 4),
        "chosen_before": len(done)}))


@dataclass(frozen=True)
class Discard:
    """Whether the rollout's pre-change snapshots go, and why."""

    delete: bool
    decision: Decision | None


def discard_snapshots(taken: int, changed: int) -> Discard:
    """Delete the rollout's pre-change snapshots when it ends having changed no production VM (it halted or was
    aborted before production, or before its first wave): none can be restored from, so they are only cost. Once
    any VM was changed they all stay: they are what a rollback restores from, kept until the operator deletes them
    (docs/deploy.md, tear-down)."""
    if taken <= 0 or changed > 0:
        return Discard(False, None)
    return Discard(True, Decision(DecisionKind.DISCARD_SNAPSHOTS, (
        f"{taken} pre-change snapshots deleted: the rollout changed no production VM, so none is needed"),
        data={"snapshots": taken}))
