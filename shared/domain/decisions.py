"""Every decision of a rollout, as a pure function that returns its reason with the numbers."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .kinds import DecisionKind
from .model import Stratum
from .policy import RolloutPolicy
from .registry import PACKAGED_PREFIX, ModelInUse, ModelSource
from .sampling import stable_rank


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


def decide_before_production(risks: list[VmRisk], policy: RolloutPolicy) -> PreProductionPlan:
    """Halt, or skip the VMs predicted to fail and proceed with the rest.

    A VM whose prediction is missing is included: the first, small wave serves as its canary.
    """
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
    included: list[str] = []
    skipped: list[str] = []
    at_risk: list[str] = []
    for key in sorted(by_stratum):
        members = by_stratum[key]
        label = Stratum.from_key(key).label
        skip = [r for r in members if r.probability is not None and r.probability >= policy.skip_probability]
        if skip:
            top = max(r.probability or 0.0 for r in skip)
            kind = DecisionKind.SKIP_STRATUM if len(skip) == len(members) else DecisionKind.SKIP_VMS
            decisions.append(Decision(kind, f"predicted failure {top:.2f} >= skip threshold "
                                      f"{policy.skip_probability:g} for {len(skip)}/{len(members)} VMs of "
                                      f"stratum {label}", key, {"vms": len(skip), "probability": top}))
        if all(r.probability is None for r in members):
            decisions.append(Decision(DecisionKind.UNCOVERED_STRATUM, f"no shadow evidence for stratum {label}: its "
                                      f"{len(members)} VMs go in every wave, guarded by the error threshold", key))
        skip_ids = {r.vm_id for r in skip}
        skipped.extend(r.vm_id for r in members if r.vm_id in skip_ids)
        for r in members:
            if r.vm_id in skip_ids:
                continue
            included.append(r.vm_id)
            if r.probability is not None and r.probability >= policy.snapshot_probability:
                at_risk.append(r.vm_id)
    included_ids = set(included)
    known = [r.probability for r in risks if r.vm_id in included_ids and r.probability is not None]
    predicted_rate = sum(known) / len(known) if known else 0.0
    decisions.append(Decision(DecisionKind.PROCEED, f"{len(included)}/{total} VMs proceed to production, "
                              f"{len(skipped)} skipped; predicted failure rate of those proceeding "
                              f"{predicted_rate:.3f}",
                              data={"included": len(included), "skipped": len(skipped)}))
    return PreProductionPlan(False, included, skipped, at_risk, predicted_rate, decisions)


@dataclass(frozen=True)
class ErrorThreshold:
    value: float
    reason: str


def adaptive_error_threshold(predicted_rate: float, policy: RolloutPolicy) -> ErrorThreshold:
    """Tolerate failures up to a multiple of what was predicted, within [base, max].

    When the model expects some failures among the VMs it let through, failing VMs at about that rate
    are the plan working (they are restored); many more than predicted means the model is wrong and the
    rollout must stop.
    """
    raw = policy.base_error_threshold + policy.threshold_multiplier * predicted_rate
    value = min(policy.max_error_threshold, raw)
    reason = (f"error threshold {value:.1%} = min(max {policy.max_error_threshold:.0%}, base "
              f"{policy.base_error_threshold:.1%} + {policy.threshold_multiplier:g} x predicted {predicted_rate:.2%})")
    return ErrorThreshold(round(value, 6), reason)


def assess_changed_vms(changed: int, failing: int, threshold: ErrorThreshold) -> Decision:
    """Halt production when the failing share of changed VMs exceeds the threshold."""
    allowed = math.floor(threshold.value * changed + 1e-9)
    share = failing / changed if changed else 0.0
    if failing > allowed:
        return Decision(DecisionKind.HALT_IN_PRODUCTION, f"{failing} failing of {changed} changed VMs = {share:.1%} > "
                        f"threshold {threshold.value:.1%} (at most {allowed} allowed)",
                        data={"failing": failing, "changed": changed, "allowed": allowed})
    return Decision(DecisionKind.CONTINUE, f"{failing} failing of {changed} changed VMs <= {allowed} allowed "
                    f"(threshold {threshold.value:.1%})", data={"failing": failing, "changed": changed})


def plan_waves(vms_by_stratum: dict[str, list[str]], policy: RolloutPolicy, salt: str) -> list[list[str]]:
    """Split the included VMs into waves, each a proportional slice of every stratum.

    Cumulative counts round up, so every stratum has a VM in the first wave and a problem the shadows
    missed shows in the smallest wave.
    """
    cumulative = []
    acc = 0.0
    for f in policy.wave_fractions:
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


def plan_scale_back(scale_set: str, extra_now: int, pending_rollbacks: int) -> Decision | None:
    """Return borrowed capacity once no rollback is pending."""
    if extra_now <= 0 or pending_rollbacks > 0:
        return None
    return Decision(DecisionKind.SCALE_IN, f"scale set {scale_set}: {pending_rollbacks} rollbacks pending; "
                    f"-{extra_now} extra instances back to the original capacity", scale_set,
                    {"remove": extra_now})
