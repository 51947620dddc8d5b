"""Every decision of a rollout, as a pure function that returns its reason with the numbers."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .bounds import failure_rate_bound, shadows_needed, surprise_p_value
from .kinds import DecisionKind
from .model import Stratum
from .policy import RolloutPolicy
from .registry import PACKAGED_PREFIX, ModelInUse, ModelSource
from .sampling import split_waves


@dataclass(frozen=True)
class Decision:
    """What was decided, about what, and why (with the numbers)."""

    kind: DecisionKind
    reason: str
    subject: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "reason": self.reason, "subject": self.subject, "data": dict(self.data)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Decision:
        return cls(DecisionKind(d["kind"]), d["reason"], d.get("subject", ""), dict(d.get("data", {})))


@dataclass(frozen=True)
class VmRisk:
    """One production VM's predicted failure probability; None when no prediction could be made."""

    vm_id: str
    stratum_key: str
    probability: float | None
    source: str = "judge"
    """Who scored it: ``model``, ``judge``, or ``judge (fallback: <why>)`` (a label for people)."""
    fallback: str | None = None
    """Why the model could not score it and the judge did, when it could not (the typed form of the label)."""
    model_version: str = ""
    """The model version that scored the fleet (set by the model adapter; empty for the judge alone)."""


def model_decision(in_use: ModelInUse, risks: list[VmRisk]) -> Decision:
    """Which model version scored this rollout; a fallback says so, with its reason.

    The version comes from the risks themselves (the adapter stamps them), so a model promoted between the
    prediction and this record cannot be credited with it.
    """
    versions = sorted({r.model_version for r in risks if r.model_version})
    version = versions[0] if len(versions) == 1 else (", ".join(versions) or in_use.version)
    by_model = sum(1 for r in risks if r.source == "model")
    current = version == in_use.version
    source = in_use.source if current else \
        ModelSource.PACKAGED if version.startswith(PACKAGED_PREFIX) else ModelSource.REGISTRY
    reason = (f"failure model {version} ({source.value}) scored {by_model} of {len(risks)} VMs; "
              "the judge the rest")
    fallback = in_use.is_fallback and current
    if fallback:
        reason = f"FALLBACK to {version}: {in_use.fallback_reason}; " + reason
    return Decision(DecisionKind.MODEL_VERSION, reason, data={"version": version, "source": source.value,
                                                    "fallback": fallback,
                                                    "fallback_reason": in_use.fallback_reason if fallback else ""})


@dataclass(frozen=True)
class PreProductionPlan:
    halt: bool
    included: list[str]
    skipped: list[str]
    at_risk: list[str]
    predicted_rate: float
    decisions: list[Decision]


@dataclass(frozen=True)
class ShadowTally:
    """A stratum's changed shadows and how many of them failed (apply failure or the health rules)."""

    failures: int
    trials: int


def decide_before_production(risks: list[VmRisk], policy: RolloutPolicy,
                             tallies: Mapping[str, ShadowTally] | None = None) -> PreProductionPlan:
    """Halt, or skip the strata the evidence condemns and proceed with the rest.

    Two kinds of evidence, each decided on its own terms:

    * the shadows' failure counts (``tallies``), through :func:`bounds.failure_rate_bound`: a stratum whose
      lower bound exceeds ``tolerable_failure_rate`` is skipped (an apply failure counts in full: 1 of 2 is
      enough), and the rollout halts when the strata that would proceed, pooled, still exceed it; a stratum
      with failures whose bound straddles the rate is *ambiguous* and said so, with the failure-free shadows
      it would need (before this decision the rollout adds shadows to such strata, within ``max_extra_shadows``:
      :func:`bake.extra_shadows`; what stays ambiguous is snapshotted ahead and guarded by the surprise test);
      the counts include, for a stratum whose sequential harm test crossed, every changed shadow
      (:func:`bake.bake_tallies`);
    * the per-VM predictions (model or judge): VMs at or above ``skip_probability`` are skipped, and the
      rollout halts when confident predictions cover ``halt_fleet_share`` of the fleet.

    A VM whose prediction is missing is included: the first, small wave serves as its canary.
    """
    tallies = tallies or {}
    total = len(risks)
    confident = [r for r in risks if r.probability is not None and r.probability >= policy.confident_failure]
    share = len(confident) / total if total else 0.0
    if total and share >= policy.halt_fleet_share:
        known = [r.probability for r in risks if r.probability is not None]
        predicted_rate = sum(known) / len(known) if known else 0.0
        reason = (f"confident failure predicted for {len(confident)}/{total} VMs = {share:.0%} "
                  f">= halt share {policy.halt_fleet_share:.0%} (probability >= {policy.confident_failure:g})")
        return PreProductionPlan(True, [], [r.vm_id for r in risks], [], predicted_rate,
                                 [Decision(DecisionKind.HALT_BEFORE_PRODUCTION, reason,
                                           data={"share": round(share, 4)})])
    decisions: list[Decision] = []
    by_stratum: dict[str, list[VmRisk]] = defaultdict(list)
    for r in risks:
        by_stratum[r.stratum_key].append(r)
    condemned: set[str] = set()
    pooled = ShadowTally(0, 0)
    for key in sorted(by_stratum):
        tally = tallies.get(key)
        if tally is None or tally.trials == 0:
            continue
        bound = failure_rate_bound(tally.failures, tally.trials, policy.bound_confidence)
        label = Stratum.from_key(key).label
        data = {"failures": tally.failures, "shadows": tally.trials, "lower": round(bound.lower, 4),
                "upper": round(bound.upper, 4), "tolerable": policy.tolerable_failure_rate}
        if bound.lower > policy.tolerable_failure_rate:
            condemned.add(key)
            decisions.append(Decision(DecisionKind.SKIP_STRATUM, f"stratum {label}: {bound.describe()}; lower bound > "
                                      f"tolerable {policy.tolerable_failure_rate:.1%}", key, data))
            continue
        pooled = ShadowTally(pooled.failures + tally.failures, pooled.trials + tally.trials)
        if tally.failures and bound.upper > policy.tolerable_failure_rate:
            need = shadows_needed(policy.tolerable_failure_rate, policy.bound_confidence)
            decisions.append(Decision(DecisionKind.AMBIGUOUS_EVIDENCE, f"stratum {label}: {bound.describe()} straddles "
                                      f"tolerable {policy.tolerable_failure_rate:.1%} (ruling it out needs "
                                      f"{need} failure-free shadows); its VMs are snapshotted ahead and left to the "
                                      "production surprise test",
                                      key, data))
    fleet = failure_rate_bound(pooled.failures, pooled.trials, policy.bound_confidence)
    proceeding = [k for k in by_stratum if k not in condemned]
    if total and (fleet.lower > policy.tolerable_failure_rate or (condemned and not proceeding)):
        why = (f"shadows of the strata that would proceed: {fleet.describe()}; lower bound > tolerable "
               f"{policy.tolerable_failure_rate:.1%}" if proceeding else "every stratum's shadows fail beyond "
               f"tolerable {policy.tolerable_failure_rate:.1%}")
        return PreProductionPlan(True, [], [r.vm_id for r in risks], [], fleet.lower, [
            *decisions, Decision(DecisionKind.HALT_BEFORE_PRODUCTION, why,
                                 data={"failures": fleet.failures, "shadows": fleet.trials,
                                       "lower": round(fleet.lower, 4), "upper": round(fleet.upper, 4)})])
    ambiguous = {d.subject for d in decisions if d.kind is DecisionKind.AMBIGUOUS_EVIDENCE}
    included: list[str] = []
    skipped: list[str] = []
    at_risk: list[str] = []
    for key in sorted(by_stratum):
        members = by_stratum[key]
        label = Stratum.from_key(key).label
        if key in condemned:
            skipped.extend(r.vm_id for r in members)
            continue
        skip = [r for r in members if r.probability is not None and r.probability >= policy.skip_probability]
        if skip:
            top = max(r.probability or 0.0 for r in skip)
            kind = DecisionKind.SKIP_STRATUM if len(skip) == len(members) else DecisionKind.SKIP_VMS
            decisions.append(Decision(kind, f"predicted failure {top:.2f} >= skip threshold "
                                      f"{policy.skip_probability:g} for {len(skip)}/{len(members)} VMs of "
                                      f"stratum {label}", key, {"vms": len(skip), "probability": top}))
        if all(r.probability is None for r in members) and key not in tallies:
            decisions.append(Decision(DecisionKind.UNCOVERED_STRATUM, f"no shadow evidence for stratum {label}: its "
                                      f"{len(members)} VMs go in every wave, guarded by the error threshold", key))
        skip_ids = {r.vm_id for r in skip}
        skipped.extend(r.vm_id for r in members if r.vm_id in skip_ids)
        for r in members:
            if r.vm_id in skip_ids:
                continue
            included.append(r.vm_id)
            if key in ambiguous or (r.probability is not None and r.probability >= policy.snapshot_probability):
                at_risk.append(r.vm_id)
    included_ids = set(included)
    predicted_rate = expected_failure_rate([r for r in risks if r.vm_id in included_ids], tallies)
    decisions.append(Decision(DecisionKind.PROCEED, f"{len(included)}/{total} VMs proceed to production, "
                              f"{len(skipped)} skipped; predicted failure rate of those proceeding "
                              f"{predicted_rate:.3f}; their shadows: {fleet.describe()}",
                              data={"included": len(included), "skipped": len(skipped),
                                    "fleet_upper": round(fleet.upper, 4)}))
    return PreProductionPlan(False, included, skipped, at_risk, predicted_rate, decisions)


def expected_failure_rate(risks: list[VmRisk], tallies: Mapping[str, ShadowTally]) -> float:
    """The failure rate predicted for these VMs: a calibrated model's probability where the model scored the VM,
    else its stratum's observed shadow rate (failures / shadows; 0 without shadows). The judge's scores rank
    strata but are not probabilities, so they never stand for a rate the production test should expect.
    """
    if not risks:
        return 0.0
    rates = []
    for r in risks:
        if r.source == "model" and r.probability is not None:
            rates.append(r.probability)
        else:
            t = tallies.get(r.stratum_key)
            rates.append(t.failures / t.trials if t is not None and t.trials else 0.0)
    return sum(rates) / len(rates)


@dataclass(frozen=True)
class ErrorThreshold:
    """The failure rate production is expected to show, and how surprising a count must be to halt."""

    value: float
    reason: str
    alpha: float = 0.05


def adaptive_error_threshold(predicted_rate: float, policy: RolloutPolicy) -> ErrorThreshold:
    """The rate the surprise test expects among the VMs that proceed: the prediction, within a floor and a cap.

    The cap is ``tolerable_failure_rate`` (and ``max_error_threshold`` if lower): a model that predicts many
    failures among the VMs it let through must not make production tolerate them (a seen failure is not
    noise). The floor, ``base_error_threshold``, keeps one benign failure from halting a good change.
    """
    cap = min(policy.tolerable_failure_rate, policy.max_error_threshold)
    value = min(cap, max(policy.base_error_threshold, predicted_rate))
    reason = (f"expected failure rate {value:.2%} = min(tolerable {cap:.1%}, max(floor "
              f"{policy.base_error_threshold:.1%}, predicted {predicted_rate:.2%})); production halts when the "
              f"failures among the changed VMs have a binomial tail below {policy.surprise_alpha:g}")
    return ErrorThreshold(round(value, 6), reason, policy.surprise_alpha)


def assess_changed_vms(changed: int, failing: int, threshold: ErrorThreshold) -> Decision:
    """Halt production when this many failures would be a surprise at the expected rate."""
    p = surprise_p_value(failing, changed, threshold.value)
    share = failing / changed if changed else 0.0
    data = {"failing": failing, "changed": changed, "expected_rate": threshold.value, "p_value": round(p, 6)}
    if failing and p < threshold.alpha:
        return Decision(DecisionKind.HALT_IN_PRODUCTION, f"{failing} failing of {changed} changed VMs = {share:.1%}: "
                        f"P(>= {failing} | rate {threshold.value:.2%}) = {p:.2g} < {threshold.alpha:g}", data=data)
    return Decision(DecisionKind.CONTINUE, f"{failing} failing of {changed} changed VMs: P(>= {failing} | rate "
                    f"{threshold.value:.2%}) = {p:.2g} >= {threshold.alpha:g}", data=data)


def assess_probe_failures(failed: int, probes: int, policy: RolloutPolicy) -> Decision | None:
    """Halt production when the changed VMs, pooled, fail more health probes than ``probe_failure_tolerance``
    allows (a binomial tail below ``surprise_alpha``): a flap that fails a few percent of probes on some VMs never
    makes one VM fail the per-VM rules in a short watch, but pooled over a wave it is unmistakable."""
    if probes <= 0:
        return None
    p = surprise_p_value(failed, probes, policy.probe_failure_tolerance)
    if failed and p < policy.surprise_alpha:
        return Decision(DecisionKind.HALT_IN_PRODUCTION, f"changed VMs failed {failed}/{probes} health probes = "
                        f"{failed / probes:.1%}: P(>= {failed} | tolerable {policy.probe_failure_tolerance:.1%}) = "
                        f"{p:.2g} < {policy.surprise_alpha:g}",
                        data={"failed_probes": failed, "probes": probes, "p_value": round(p, 6)})
    return None


def withdraw_change(live: list[str], failing: Mapping[str, str], verdict: Decision) -> Decision:
    """Failures too many for the expected rate (between waves or after the last) withdraw the change from every
    changed VM.

    An effect that begins after the bake (a crash hours later) shows first on the earliest wave; once the
    surprise test says it is the change, the VMs that have not failed yet will, so they are restored too rather
    than one by one as each fails. Between waves the same verdict halts the rollout and withdraws the change from
    the waves already done: a VM left on a change shown bad is impaired when its turn comes, found only by the
    watch's next look. ``data["vms"]`` maps each VM to withdraw to its reason.
    """
    vms = {k: f"change withdrawn: {verdict.reason}" for k in sorted(live) if k not in failing}
    return Decision(DecisionKind.WITHDRAW_CHANGE, f"{verdict.reason}; the change is withdrawn from the "
                    f"{len(vms)} changed VMs that have not failed yet", data={"vms": vms, **verdict.data})


def plan_waves(vms_by_stratum: dict[str, list[str]], policy: RolloutPolicy, salt: str) -> list[list[str]]:
    """Split the included VMs into waves, each a proportional slice of every stratum.

    Cumulative counts round up, so every stratum has a VM in the first wave and a problem the shadows
    missed shows in the smallest wave.
    """
    return split_waves(vms_by_stratum, policy.wave_fractions, salt)


def plan_capacity(scale_set: str, demand_units: float, serving_after: int, leaving: int, extra_now: int,
                  policy: RolloutPolicy, basis: str = "are out for rollback") -> Decision | None:
    """Scale out ahead of VMs that leave service for a rollback, so demand stays served.

    ``demand_units`` is the VM count needed to keep utilisation at the target; ``serving_after`` counts what
    still serves while ``leaving`` VMs are out (extra instances included). Only the rollback's own load is
    covered: a scale set that was short before the rollout is not this tool's to resize.
    """
    add = _needed(demand_units, serving_after, leaving, policy)
    if add <= 0:
        return None
    return Decision(DecisionKind.SCALE_OUT, f"scale set {scale_set}: demand {demand_units:.1f} VM units > "
                    f"{serving_after} serving while {leaving} VMs {basis}; +{add} instances",
                    scale_set, {"add": add, "extra_total": extra_now + add})


def _needed(demand_units: float, serving_after: int, leaving: int, policy: RolloutPolicy) -> int:
    add = min(max(0, math.ceil(demand_units - serving_after - 1e-9)), leaving)
    return add + policy.capacity_buffer_instances if add > 0 else 0


def forecast_rollbacks(changed: int, rolled_back: int, to_change: int, expected_by_risk: float) -> tuple[int, str]:
    """Rollbacks still to expect in a scale set, and why: the rollback rate seen in the waves so far times the VMs
    still to change, or, before any evidence, the predicted risk of the at-risk VMs still to change."""
    if changed > 0:
        rate = rolled_back / changed
        n = math.ceil(rate * to_change - 1e-9)
        return n, (f"are forecast to roll back ({rolled_back} of {changed} changed VMs rolled back so far, "
                   f"{rate:.0%} of the {to_change} still to change)")
    n = round(expected_by_risk)
    return n, f"are expected to fail (predicted risk of the at-risk VMs still to change: {expected_by_risk:.1f})"


def settle_capacity(scale_set: str, demand_units: float, serving: int, expected: int, basis: str, extra_now: int,
                    pending_rollbacks: int, policy: RolloutPolicy) -> Decision | None:
    """Hold as many borrowed instances as the rollbacks still expected need, no more: instances borrowed for VMs
    that passed their wave's check go back, and a forecast that grew borrows more. ``serving`` counts the scale
    set's own VMs that serve now (borrowed instances aside). Nothing moves while a rollback is pending (its
    recovery holds what it borrowed)."""
    if pending_rollbacks > 0:
        return None
    need = _needed(demand_units, serving - expected, expected, policy) if expected > 0 else 0
    if need == extra_now:
        return None
    if need < extra_now:
        return Decision(DecisionKind.SCALE_IN, f"scale set {scale_set}: the VMs {extra_now - need} borrowed "
                        f"instances were for passed their wave's check; {expected} rollbacks still expected; "
                        f"-{extra_now - need} instances (holding {need})", scale_set,
                        {"remove": extra_now - need, "extra_total": need})
    return Decision(DecisionKind.SCALE_OUT, f"scale set {scale_set}: demand {demand_units:.1f} VM units while "
                    f"{expected} VMs {basis}; +{need - extra_now} instances (holding {need})", scale_set,
                    {"add": need - extra_now, "extra_total": need})


def cap_at_maximum(d: Decision, scale_set: str, original: int, maximum: int, extra_now: int) -> Decision:
    """Hold a scale-out to what the scale set may hold (:mod:`.scale_set_limits`): ARM refuses more, and a
    refused scale-out would borrow nothing. The rollbacks proceed without what is left out; the shortfall shows
    in the outcome's capacity figures. ``original`` is the capacity before the rollout (borrowed instances are
    counted on top of it)."""
    wanted = int(d.data["extra_total"])
    room = max(0, maximum - original)
    if d.kind is not DecisionKind.SCALE_OUT or wanted <= room:
        return d
    total = max(room, extra_now)  # a scale-out never gives back what is held
    add = total - extra_now
    return Decision(DecisionKind.SCALE_OUT, f"{d.reason}, wanted; +{add} instances: at its {maximum:,}-instance "
                    f"maximum ({original:,} before the rollout + {total} borrowed)", scale_set,
                    {**d.data, "add": add, "extra_total": total, "wanted_extra_total": wanted, "maximum": maximum})


def capacity_refused(scale_set: str, capacity: int, extra_now: int, why: str) -> Decision:
    """A scale-out ARM refused: the rollbacks go on without it, holding what was borrowed before."""
    return Decision(DecisionKind.SCALE_OUT, f"scale set {scale_set}: capacity {capacity:,} refused ({why}); "
                    f"+0 instances, the rollbacks proceed holding {extra_now}", scale_set,
                    {"add": 0, "extra_total": extra_now, "refused": capacity})


def plan_scale_back(scale_set: str, extra_now: int, pending_rollbacks: int) -> Decision | None:
    """Return borrowed capacity once no rollback is pending."""
    if extra_now <= 0 or pending_rollbacks > 0:
        return None
    return Decision(DecisionKind.SCALE_IN, f"scale set {scale_set}: {pending_rollbacks} rollbacks pending; "
                    f"-{extra_now} extra instances back to the original capacity", scale_set,
                    {"remove": extra_now})
