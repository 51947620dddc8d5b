"""Leave nothing behind: the janitor that finds what a rollout could not clean up (lease release and the record
of a rollout that failed early are activities: :mod:`.activities.cleanup`).

The janitor works from the world, not from a rollout's bookkeeping (which a crash may have cut short): shadows
are found by their tag, leases by the rollouts the store knows, capacity by comparing each target's capacity now
with the one recorded before the rollout. It acts only for rollouts that have ended (or that no record names),
so it never takes anything from a running rollout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from ..domain.naming import rollout_label
from ..services import Services

RUNNING = "running"


@dataclass
class JanitorReport:
    shadows: list[str] = field(default_factory=list)
    leases: int = 0
    extra_instances: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    failed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def janitor(svc: Services, *, dry_run: bool = False, stopped: set[str] | frozenset[str] = frozenset()) -> JanitorReport:
    """Find (and unless ``dry_run``, return) leaked shadows, leases of ended rollouts and borrowed instances.

    ``stopped`` names rollouts whose orchestration is known to have stopped although their record still says
    running (it failed or was terminated before it could record its end)."""
    report = JanitorReport()
    records = {rid: svc.store.get_rollout(rid) or {} for rid in svc.store.rollout_ids()}
    ended = {rid for rid, rec in records.items() if rec.get("state", RUNNING) != RUNNING or rid in stopped}
    running_labels = {rollout_label(rid) for rid in records if rid not in ended}
    # shadows: any whose tag names no running rollout
    orphans = sorted(sid for sid, label in svc.shadows.tagged().items() if label not in running_labels)
    if orphans:
        report.shadows = orphans
        report.reasons.append(f"{len(orphans)} shadows tagged by no running rollout")
        if not dry_run:
            _attempt(report, "teardown", partial(svc.shadows.teardown, orphans))
    # leases and capacity of ended rollouts; a target leased to a running rollout is that rollout's business
    busy = {t for rid in records if rid not in ended for t in records[rid].get("request", {}).get("targets", [])}
    for rid in sorted(ended):
        rec = records[rid]
        targets = [t for t in rec.get("request", {}).get("targets", []) if t not in busy]
        held = svc.leases.holders(targets) if targets else {}
        mine = [t for t, c in held.items() if c.holder == rid]
        if mine:
            report.leases += len(mine)
            report.reasons.append(f"{rid}: {len(mine)} leases still held after the rollout ended")
            if not dry_run:
                _attempt(report, "lease release", partial(svc.leases.release, rid, mine))
        for t, original in sorted(rec.get("original_capacity", {}).items()):
            if t in busy:
                continue
            now = svc.fleet.capacity(t)
            if now > int(original):
                report.extra_instances[t] = now - int(original)
                report.reasons.append(f"{rid}: {t.rsplit('/', 1)[-1]} holds {now - int(original)} instances "
                                      f"beyond its {original} before the rollout")
                if not dry_run:
                    _attempt(report, "scale-in", partial(svc.fleet.set_capacity, t, int(original)))
    return report


def _attempt(report: JanitorReport, what: str, action: Callable[[], object]) -> None:
    """One janitor action; a failure is reported (the next round tries again), never raised."""
    try:
        action()
    except Exception as exc:
        report.reasons.append(f"{what} failed: {type(exc).__name__}: {str(exc)[:200]}")
        report.failed += 1
