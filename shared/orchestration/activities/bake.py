"""The sequential bake on the shadows: one look per call (during the bake and through the waves, from
``analyse_shadows`` and ``watch_shadows``), and the shadows added to ambiguous strata.

Each look feeds the minutes since the previous one to every stratum's e-processes (:mod:`shared.domain.sequential`)
and stores the states; a look at a minute already seen adds nothing (safe to run twice).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import timedelta

from ...domain.bake import bake_tallies, extra_shadows
from ...domain.decisions import Decision, ShadowTally
from ...domain.features import shadow_tallies
from ...domain.kinds import DecisionKind
from ...domain.model import ApplyStatus, ShadowPlan, ShadowState, Stratum
from ...domain.sequential import (
    BakeStatus,
    SequentialDesign,
    SeqVerdict,
    StratumSequence,
    bake_status,
    baseline_deviations,
    oriented_changes,
    start_sequence,
    suspicious,
    update_sequence,
)
from ...services import Services
from ..chunks import chunk_count
from ..repository import Step
from ..state import AddShadowsResult, RolloutPhase, RolloutRef, ShadowRole
from .common import Rollout

FLEET = "fleet"
PROCEEDING = "proceeding"
"""The shadows of the strata that proceed to production, pooled: what the watch through the waves tests."""


def sequence_look(r: Rollout, included: set[str] | None = None) -> tuple[dict[str, StratumSequence], BakeStatus | None]:
    """Feed the minutes since the last look to every stratum's sequential tests (and the pooled ``fleet``).

    Only the shadows changed with the first apply take part (an added shadow has no pre-change window of the same
    minutes; it counts through its failures). Increments are each shadow-minute against its own pre-change centre,
    minus the environment's shift: the median over every running control twin of its change over the same minutes.
    """
    rec = r.record
    if rec.baseline_start is None or rec.shadow_apply_at is None:
        raise RuntimeError(f"rollout {r.id}: the shadows were not baselined and changed before the analysis")
    states = r.repo.sequences()
    bake_start = rec.bake_start
    if bake_start is None:
        bake_start = max((c.applied_at for c in r.repo.shadow_chunks().values()), default=rec.shadow_apply_at)
        r.update(bake_start=bake_start)
    now = r.now
    minute = round((now - bake_start) / timedelta(minutes=1), 3)
    design = SequentialDesign.from_policy(r.policy)
    if minute <= 0:
        return states, None
    items = r.repo.shadows()
    treated: dict[str, list[str]] = defaultdict(list)
    for k, v in items.items():
        if (v.role is ShadowRole.TREATED and not v.extra and not v.deleted and v.apply is not None
                and v.apply.status is ApplyStatus.OK and v.info.state is not ShadowState.FAILED):
            treated[v.info.stratum_key].append(k)
    twins: dict[str, list[str]] = defaultdict(list)
    for k, v in items.items():
        if v.role is ShadowRole.CONTROL and not k.startswith("failed:") and not v.deleted:
            twins[Stratum.from_key(v.info.stratum_key).twin_group].append(k)
    rows = sorted({k for ks in treated.values() for k in ks})
    if not rows:
        return states, bake_status(states, minute, design) if states else None
    controls = sorted({k for ks in twins.values() for k in ks})
    frame = r.svc.telemetry.signals(rows + controls, rec.baseline_start, now)
    # every stratum's environment from every running twin (a median over them, :func:`oriented_changes`): one
    # twin alone is at the mercy of a benign burst in its few pre-change minutes
    groups: dict[str, tuple[list[str], list[str]]] = {key: (sorted(ks), controls) for key, ks in treated.items()}
    groups[FLEET] = (rows, controls)
    if included is not None:  # through the waves: the shadows of the strata that proceed, pooled
        mine = sorted(k for key, ks in treated.items() if key in included for k in ks)
        if mine:
            groups[PROCEEDING] = (mine, controls)
    updated: dict[str, StratumSequence] = {}
    for key, (mine, ctrl) in sorted(groups.items()):
        sub = frame.rows(mine)
        base = sub.between(rec.baseline_start, rec.shadow_apply_at)
        cframe = frame.rows(ctrl) if ctrl else None
        cbase = cframe.between(rec.baseline_start, rec.shadow_apply_at) if cframe is not None else None
        state = states.get(key) or start_sequence(
            key, baseline_deviations(base), design, baseline_deviations(cbase) if cbase is not None else None)
        since = bake_start + timedelta(minutes=state.minute if state.looks else 0.0)
        window = sub.between(since, now)
        control = (cbase, cframe.between(since, now)) if cframe is not None and cbase is not None else None
        updated[key], _ = update_sequence(state, oriented_changes(base, window, control), minute, design)
    r.repo.put_sequences(updated)
    merged = {**states, **updated}
    strata = {k: v for k, v in merged.items() if k not in (FLEET, PROCEEDING)}
    return merged, bake_status(strata, minute, design, merged.get(FLEET))


def current_tallies(r: Rollout, states: Mapping[str, StratumSequence]) -> dict[str, ShadowTally]:
    """The halt rule's failure counts from the stored evidence and the sequential states (``bake_tallies``)."""
    evidence, _ = r.repo.evidence()
    return bake_tallies(shadow_tallies(evidence), {k: v for k, v in states.items() if k not in (FLEET, PROCEEDING)})


def add_shadows(svc: Services, payload: RolloutRef) -> AddShadowsResult:
    """Plan more shadows for the strata whose evidence is ambiguous (:func:`domain.bake.extra_shadows`).

    Safe to run twice: the record says first how many plans there were and how many are added; a second run plans
    from those same first plans and the same evidence (so it picks the same VMs), and writes them if they are
    missing."""
    r = Rollout(svc, payload.rollout_id, Step.ADD_SHADOWS)
    plans = r.repo.plans()
    if r.record.extra_shadows_planned:
        if len(plans) == r.record.extra_shadows_base + r.record.extra_shadows_planned:
            return AddShadowsResult(added=r.record.extra_shadows_planned, chunks=chunk_count(len(plans)))
        plans = plans[:r.record.extra_shadows_base]  # stopped between the record and the plans: plan again
    states = r.repo.sequences()
    tallies = current_tallies(r, states)
    vms = r.vms()
    used: dict[str, set[str]] = defaultdict(set)
    for _, p in plans:
        used[p.stratum_key].add(p.source_vm_id)
    members: dict[str, list[str]] = defaultdict(list)
    for k, v in sorted(vms.items()):
        members[v.stratum].append(k)
    added, decisions = extra_shadows({k: v for k, v in states.items() if k not in (FLEET, PROCEEDING)}, tallies,
                                     {k: len(v) for k, v in members.items()},
                                     {k: len(v) for k, v in used.items()}, r.policy)
    new: list[ShadowPlan] = []
    for key, n in sorted(added.items()):
        free = [v for v in members[key] if v not in used[key]][:n]
        new += [ShadowPlan(source_vm_id=v, stratum_key=key, sku=vms[v].info.sku, zone=vms[v].info.zone or "",
                           role=ShadowRole.TREATED.value) for v in free]
    if new:
        r.update(extra_shadows_planned=len(new), extra_shadows_base=len(plans), phase=RolloutPhase.SHADOW_POOL)
        r.repo.put_plans([p for _, p in plans] + new)
    r.decide(decisions)
    return AddShadowsResult(added=len(new), chunks=chunk_count(len(plans) + len(new)))


def doubt(states: Mapping[str, StratumSequence], included: set[str]) -> bool:
    """Doubt (the wave watches to its maximum): a proceeding stratum is suspect, or no harm is shown neither by
    every proceeding stratum nor by the shadows pooled (the same test as the bake's end)."""
    mine = [s for k, s in states.items() if k in included]
    if any(suspicious(s) for s in mine):
        return True
    fleet = states.get(FLEET)
    every = bool(mine) and all(s.verdict is SeqVerdict.NO_HARM for s in mine)
    return not (every or (fleet is not None and fleet.verdict is SeqVerdict.NO_HARM))


def bake_end_decision(status: BakeStatus) -> Decision:
    return Decision(DecisionKind.BAKE_END, status.reason, data={"harmed": len(status.harmed),
                                                                "no_harm": len(status.no_harm),
                                                                "pending": len(status.pending)})
