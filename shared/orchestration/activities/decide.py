"""The judgement: analyse the shadows during the bake, then predict for every VM and plan the waves (or halt)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import numpy as np

from ... import observability
from ...domain.ahead import SnapshotsAhead, snapshots_ahead
from ...domain.bake import bake_tallies, extra_shadows, shadow_watch_verdict
from ...domain.decisions import (
    Decision,
    VmRisk,
    adaptive_error_threshold,
    decide_before_production,
    model_decision,
    plan_waves,
)
from ...domain.features import FeatureTable, StratumEvidence, build_features, evidence_of, shadow_tallies
from ...domain.judge import Phase, StratumVerdict, apply_fleet_evidence, judge_stratum
from ...domain.kinds import DecisionKind
from ...domain.model import ApplyStatus, Stratum, VmInfo
from ...domain.policy import RolloutPolicy
from ...domain.sequential import SequentialDesign
from ...domain.waves import BakeEvidence, WaveDesign, plan_adaptive_waves
from ...services import Services
from ..repository import Step
from ..state import (
    AnalysisResult,
    DecideResult,
    RolloutPhase,
    RolloutRef,
    ShadowItem,
    ShadowRole,
    VmItem,
    WatchShadowsInput,
    WatchShadowsResult,
)
from .bake import FLEET, PROCEEDING, bake_end_decision, doubt, sequence_look
from .common import Rollout


def _verdicts(r: Rollout) -> tuple[dict[str, StratumVerdict], StratumVerdict | None]:
    """Judge every stratum, and all treated shadows pooled, from baseline and post-change windows up to now."""
    items = r.repo.shadows()
    baseline_start = r.record.baseline_start
    apply_at = r.record.shadow_apply_at
    if baseline_start is None or apply_at is None:
        raise RuntimeError(f"rollout {r.id}: the shadows were not baselined and changed before the analysis")
    applied_done = r.record.bake_start or max((c.applied_at for c in r.repo.shadow_chunks().values()),
                                              default=apply_at)
    now = r.now
    observed = [k for k, v in items.items() if v.apply is not None]
    controls = [k for k, v in items.items() if v.role is ShadowRole.CONTROL and not k.startswith("failed:")]
    frame = r.svc.telemetry.signals(observed + controls, baseline_start, now) if observed else None
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for k in observed:
        by_stratum[items[k].info.stratum_key].append(k)
    twins: dict[str, list[str]] = defaultdict(list)
    for k in controls:
        twins[Stratum.from_key(items[k].info.stratum_key).twin_group].append(k)
    verdicts: dict[str, StratumVerdict] = {}
    all_strata = {v.stratum for v in r.vms().values()}
    for key in sorted(all_strata):
        label = Stratum.from_key(key).label
        rows = by_stratum.get(key, [])
        if not rows or frame is None:
            verdicts[key] = StratumVerdict(key, label, Phase.INCONCLUSIVE, None,
                                           f"no shadow of stratum {label} received the change", 0)
            continue
        sub = frame.rows(rows)
        applies = [a for k in rows if (a := items[k].apply) is not None]
        twin_rows = twins.get(Stratum.from_key(key).twin_group, [])
        control = frame.rows(twin_rows) if twin_rows else None
        verdicts[key] = judge_stratum(
            key, label, sub.between(baseline_start, apply_at), sub.between(applied_done, now), applies, r.policy,
            control=(control.between(baseline_start, apply_at), control.between(applied_done, now))
            if control is not None else None)
    fleet: StratumVerdict | None = None
    ok = [k for k in observed if (a := items[k].apply) is not None and a.status is ApplyStatus.OK]
    if frame is not None and ok:
        pooled = frame.rows(ok)
        twin_frame = frame.rows(controls) if controls else None
        fleet = judge_stratum(
            "fleet", "all strata", pooled.between(baseline_start, apply_at), pooled.between(applied_done, now),
            [a for k in ok if (a := items[k].apply) is not None], r.policy,
            control=(twin_frame.between(baseline_start, apply_at), twin_frame.between(applied_done, now))
            if twin_frame is not None else None)
        if len(by_stratum) > 1:
            verdicts = apply_fleet_evidence(verdicts, fleet, r.policy)
    return verdicts, fleet


def _evidence(r: Rollout, verdicts: dict[str, StratumVerdict], fleet: StratumVerdict | None
              ) -> tuple[dict[str, StratumEvidence], StratumEvidence | None]:
    treated: dict[str, list[ShadowItem]] = defaultdict(list)
    for v in r.repo.shadows().values():
        if v.apply is not None:
            treated[v.info.stratum_key].append(v)

    def of(verdict: StratumVerdict, shadows: list[ShadowItem]) -> StratumEvidence:
        return evidence_of(verdict, [a for x in shadows if (a := x.apply) is not None],
                           [x.load for x in shadows if x.load is not None])

    evidence = {k: of(v, treated.get(k, [])) for k, v in verdicts.items()}
    pooled = of(fleet, [x for xs in treated.values() for x in xs]) if fleet is not None else None
    return evidence, pooled


def _risks(r: Rollout, evidence: dict[str, StratumEvidence], fleet: StratumEvidence | None,
           items: dict[str, VmItem] | None = None) -> tuple[list[VmInfo], FeatureTable, list[VmRisk]]:
    vms = [v.info for v in (r.vms() if items is None else items).values()]
    table = build_features(vms, evidence, fleet)
    return vms, table, r.svc.model.predict(table)


def _since_shadow_apply(r: Rollout) -> float:
    """Minutes since the shadows' apply began: production's last wave begins its own apply no sooner than
    ``bake_minutes`` after it (apply for apply, the shadows lead the bulk of production by the whole bake)."""
    start = r.record.shadow_apply_at
    return max(0.0, (r.now - start) / timedelta(minutes=1)) if start is not None else 0.0


def watch_shadows(svc: Services, payload: WatchShadowsInput) -> WatchShadowsResult:
    """One look at the shadows kept through the waves (the sequential tests only): halt before the next wave when
    they show harm with the family's error rate controlled (:func:`domain.bake.shadow_watch_verdict`); ``doubt``
    when no harm is not shown (the wave watches longer)."""
    r = Rollout(svc, payload.rollout_id, Step.WATCH_SHADOWS, f"w{payload.wave:02d}")
    included = {v.stratum for v in r.vms().values() if not v.skipped}
    states, _ = sequence_look(r, included)
    strata = {k: v for k, v in states.items() if k not in (FLEET, PROCEEDING)}
    verdict = shadow_watch_verdict(strata, states.get(PROCEEDING), included, SequentialDesign.from_policy(r.policy),
                                   payload.wave)
    minute = states[FLEET].minute if FLEET in states else 0.0
    unsure = doubt(states, included)
    if verdict is None:
        return WatchShadowsResult(halt=False, doubt=unsure, minute=minute)
    if not r.record.halted:
        r.update(halted=True, phase=RolloutPhase.HALTED_IN_PRODUCTION)
        r.decide([verdict])
    return WatchShadowsResult(halt=True, doubt=unsure, reason=verdict.reason, minute=minute)


def analyse_shadows(svc: Services, payload: RolloutRef) -> AnalysisResult:
    """One look during the bake: the sequential tests take the minutes since the last look, the judge its windows;
    says whether the one halt rule already halts, whether the bake may end, and whether the evidence is ambiguous."""
    r = Rollout(svc, payload.rollout_id, Step.ANALYSE_SHADOWS)
    states, status = sequence_look(r)
    verdicts, fleet = _verdicts(r)
    evidence, pooled = _evidence(r, verdicts, fleet)
    r.repo.put_evidence(evidence, pooled)
    items = r.vms()
    _, _, risks = _risks(r, evidence, pooled, items)
    tallies = bake_tallies(shadow_tallies(evidence), {k: v for k, v in states.items() if k != FLEET})
    plan = decide_before_production(risks, r.policy, tallies)
    failing = [v for v in verdicts.values() if v.phase is Phase.FAILED]
    inconclusive = [v for v in verdicts.values() if v.phase is Phase.INCONCLUSIVE]
    r.repo.put_verdicts(verdicts)
    apply_at: datetime = r.record.shadow_apply_at or r.now
    baked = r.minute() - r.minute(apply_at)
    done = status is not None and status.done
    strata = {k: v for k, v in states.items() if k != FLEET}
    ambiguous = bool(extra_shadows(strata, tallies, {k: 1 << 20 for k in verdicts}, {}, r.policy)[0])
    decisions = [Decision(DecisionKind.ANALYSIS, f"bake minute {baked:.0f}: judge: "
                          f"{len(failing)} failing, {len(inconclusive)} inconclusive of {len(verdicts)} strata"
                          + (f"; worst: {failing[0].reason}" if failing else "")
                          + (f"; sequential: {status.reason}" if status is not None else ""),
                          data={"failing": len(failing), "inconclusive": len(inconclusive),
                                "seq_harmed": len(status.harmed) if status else 0,
                                "seq_no_harm": len(status.no_harm) if status else 0,
                                "seq_pending": len(status.pending) if status else 0})]
    if done and status is not None:
        decisions.append(bake_end_decision(status))
    elif plan.halt:
        decisions.append(Decision(DecisionKind.BAKE_END, f"bake ends at minute {baked:.0f}: the halt rule halts "
                                  "before production"))
    ahead = None if plan.halt else _choose_ahead(r, items, risks, plan.included, plan.at_risk, baked)
    if ahead is not None and ahead.decision is not None:
        decisions.append(ahead.decision)
    r.decide(decisions)
    pending = _mark_ahead(r, items, ahead.vm_ids) if ahead is not None else 0
    return AnalysisResult(failing=len(failing), inconclusive=len(inconclusive), strata=len(verdicts),
                          halt=plan.halt, bake_done=done, ambiguous=ambiguous, snapshot_ahead=pending)


def _first_shares(policy: RolloutPolicy) -> list[float]:
    """The first wave's share of every schedule the decision may pick."""
    if not policy.adaptive_waves:
        return [policy.wave_fractions[0]]
    design = WaveDesign.from_policy(policy)
    return [design.low.fractions[0], design.moderate.fractions[0], design.high.fractions[0]]


def _choose_ahead(r: Rollout, items: dict[str, VmItem], risks: list[VmRisk], included: list[str],
                  at_risk: list[str], baked: float) -> SnapshotsAhead | None:
    """The VMs this look wants snapshotted before the decision, not chosen before
    (:func:`domain.ahead.snapshots_ahead`)."""
    if not r.policy.snapshots_during_bake or r.policy.dry_run:
        return None
    stratum = {x.vm_id: x.stratum_key for x in risks}
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for v in included:
        by_stratum[stratum[v]].append(v)
    chosen = [k for k, v in items.items() if v.ahead]
    shares = _first_shares(r.policy) if r.policy.first_wave_snapshots_during_bake else []
    return snapshots_ahead(by_stratum, at_risk, chosen, shares, r.id, baked)


def _mark_ahead(r: Rollout, items: dict[str, VmItem], new: tuple[str, ...]) -> int:
    """Mark the chosen VMs (after the decision is recorded: a run cut short between the two chooses them again and
    records it again, rather than leaving them marked without a word); the marked VMs still without a snapshot
    (``items``: the VMs as this look read them)."""
    if new:
        r.repo.update_vms(list(new), lambda _, cur: cur.model_copy(update={"ahead": True}))
    marked = set(new)
    return sum(1 for k, v in items.items() if (v.ahead or k in marked) and v.snapshot is None)


def decide(svc: Services, payload: RolloutRef) -> DecideResult:
    """Predict for every production VM, then halt, or skip the at-risk VMs and plan the waves."""
    r = Rollout(svc, payload.rollout_id, Step.DECIDE)
    verdicts = r.repo.verdicts()
    evidence, pooled = r.repo.evidence()
    vms, table, risks = _risks(r, evidence, pooled)
    sequences = r.repo.sequences()
    fleet_state = sequences.get(FLEET)
    states = {k: v for k, v in sequences.items() if k not in (FLEET, PROCEEDING)}
    plan = decide_before_production(risks, r.policy, bake_tallies(shadow_tallies(evidence), states))
    threshold = adaptive_error_threshold(plan.predicted_rate, r.policy)
    skipped = set(plan.skipped)
    observability.predictions_made(r.id, [(x.source, x.vm_id in skipped) for x in risks],
                                   outcome="halt" if plan.halt else "dry_run" if r.policy.dry_run else "production")
    by_vm = {x.vm_id: (i, x) for i, x in enumerate(risks)}

    def predicted(vm_id: str, cur: VmItem) -> VmItem:
        i, x = by_vm[vm_id]
        return cur.model_copy(update={
            "risk": x.probability, "risk_source": x.source, "judge_score": table.judge_scores[i],
            "features": {n: (None if not np.isfinite(v) else round(float(v), 6))
                         for n, v in zip(table.names, table.matrix[i], strict=True)},
            "evidence": verdicts[x.stratum_key].reason if x.stratum_key in verdicts else "",
            "skipped": vm_id in skipped})

    r.repo.update_vms(by_vm, predicted)
    decisions = [model_decision(svc.model.in_use(), risks), *plan.decisions]
    fallbacks: dict[tuple[str, str], int] = defaultdict(int)
    for x in risks:
        if x.fallback is not None:
            fallbacks[(x.stratum_key, x.fallback)] += 1
    decisions += [Decision(DecisionKind.MODEL_FALLBACK, f"{n} VMs of stratum {Stratum.from_key(k).label} scored by "
                           f"the statistical judge instead of the model: {why}", k)
                  for (k, why), n in sorted(fallbacks.items())]
    for v in verdicts.values():
        if v.phase is Phase.FAILED:
            decisions.insert(0, Decision(DecisionKind.STRATUM_FAILED, v.reason, v.stratum_key, {"score": v.score}))
    r.update(decided_at=r.now)
    if plan.halt:
        r.update(halted=True, phase=RolloutPhase.HALTED_BEFORE_PRODUCTION)
        r.decide(decisions)
        return DecideResult(halt=True, included=0, skipped=len(plan.skipped))
    if r.policy.dry_run:
        r.update(halted=True, phase=RolloutPhase.DRY_RUN)
        decisions.append(Decision(DecisionKind.DRY_RUN, f"dry run: predictions recorded for {len(risks)} VMs; "
                                  f"{len(plan.included)} would proceed, {len(plan.skipped)} would be skipped; "
                                  "production not touched"))
        r.decide(decisions)
        return DecideResult(halt=True, included=len(plan.included), skipped=len(plan.skipped))
    by_stratum: dict[str, list[str]] = defaultdict(list)
    stratum_of = {vm.vm_id: vm.stratum.key for vm in vms}
    for vm_id in plan.included:
        by_stratum[stratum_of[vm_id]].append(vm_id)
    if r.policy.adaptive_waves:
        bake = BakeEvidence.from_states(states, by_stratum, fleet_state)
        adaptive = plan_adaptive_waves(by_stratum, plan.predicted_rate, bake, WaveDesign.from_policy(r.policy),
                                       salt=r.id)
        waves = [list(w.vm_ids) for w in adaptive.waves]
        watch_min = [w.min_watch_minutes for w in adaptive.waves]
        watch_max = [w.max_watch_minutes for w in adaptive.waves]
        why = adaptive.reason
    else:
        waves = plan_waves(by_stratum, r.policy, salt=r.id)
        watch_min = watch_max = [float(r.policy.wave_watch_minutes)] * len(waves)
        why = (f"{len(waves)} waves of " + ", ".join(str(len(w)) for w in waves)
               + f" VMs, each a slice of every included stratum, watched {r.policy.wave_watch_minutes} min")
    r.repo.put_waves(waves)
    wave_of = {vm_id: i for i, w in enumerate(waves) for vm_id in w}
    r.repo.update_vms(wave_of, lambda k, cur: cur.model_copy(update={"wave": wave_of[k]}))
    r.update(threshold=threshold.value, threshold_reason=threshold.reason, predicted_rate=plan.predicted_rate,
             at_risk=list(plan.at_risk), phase=RolloutPhase.PRODUCTION)
    decisions.append(Decision(DecisionKind.ERROR_THRESHOLD, threshold.reason, data={"threshold": threshold.value}))
    decisions.append(Decision(DecisionKind.PLAN_WAVES, why, data={"waves": [len(w) for w in waves],
                                                                  "watch_min": watch_min, "watch_max": watch_max}))
    r.decide(decisions)
    return DecideResult(halt=False, waves=[len(w) for w in waves], included=len(plan.included),
                        skipped=len(plan.skipped), threshold=threshold.value, watch_min=watch_min,
                        watch_max=watch_max, shadow_minute=_since_shadow_apply(r))
