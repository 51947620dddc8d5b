"""The bake's own decisions: how long to wait before the change, what the shadows' evidence counts for in the one
halt rule, when to add shadows, and when a shadow watched through the waves stops production.

The sequential procedure itself is :mod:`shared.domain.sequential`; these functions turn its states into the
decisions a rollout records, each pure and returning its reason with the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from .bounds import failure_rate_bound
from .decisions import Decision, ShadowTally
from .kinds import DecisionKind
from .model import Stratum
from .policy import RolloutPolicy
from .sequential import SequentialDesign, SeqVerdict, StratumSequence, suspicious, thresholds


@dataclass(frozen=True)
class BaselineWait:
    minutes: int
    reason: str


def baseline_wait(strata: Collection[str], twin_groups: Collection[str], policy: RolloutPolicy) -> BaselineWait:
    """Minutes of pre-change telemetry to collect on the shadows before they take the change.

    Each shadow's increments are measured from its own pre-change centre minus what its untouched control twins
    showed over the same minutes (:func:`sequential.oriented_changes`), and the centre's estimation error is priced
    into each test's margins (:func:`sequential.start_sequence`). So when every stratum has a running twin, the
    environment's shift is measured while the change bakes, and only ``twin_baseline_minutes`` are needed to place
    the centres; a stratum without a twin needs the full ``baseline_minutes`` to see the environment's drift.
    """
    bare = sorted(k for k in strata if Stratum.from_key(k).twin_group not in set(twin_groups))
    if strata and not bare and policy.twin_baseline_minutes < policy.baseline_minutes:
        return BaselineWait(policy.twin_baseline_minutes,
                            f"every one of {len(strata)} strata has a running control twin: a "
                            f"{policy.twin_baseline_minutes}-minute baseline places the shadows' centres (their "
                            "error widens the tests' margins) and the twins measure the environment during the bake")
    why = (f"{len(bare)} of {len(strata)} strata have no control twin, e.g. {Stratum.from_key(bare[0]).label}"
           if bare else "no shorter baseline configured")
    return BaselineWait(policy.baseline_minutes, f"{why}: the full {policy.baseline_minutes}-minute baseline")


def bake_tallies(hard: Mapping[str, ShadowTally], states: Mapping[str, StratumSequence]) -> dict[str, ShadowTally]:
    """The shadows' failure counts the halt rule bounds: the hard failures (apply failures, the health rules, a
    stratum the judge failed) and, for a stratum whose sequential harm test crossed, every changed shadow (harm
    shown on the stratum's pooled signals is harm on each of them, as a judge failure is)."""
    out = dict(hard)
    for key, st in states.items():
        t = hard.get(key)
        if st.verdict is SeqVerdict.HARM and t is not None and t.trials:
            out[key] = ShadowTally(t.trials, t.trials)
    return out


def extra_shadows(states: Mapping[str, StratumSequence], tallies: Mapping[str, ShadowTally],
                  stratum_sizes: Mapping[str, int], sources_used: Mapping[str, int],
                  policy: RolloutPolicy) -> tuple[dict[str, int], list[Decision]]:
    """Shadows to add to the suspect strata when the evidence is ambiguous, before the decision (issue #13).

    Ambiguous: a stratum with failing shadows whose failure-rate bound straddles the tolerable rate, or whose
    sequential test stopped neither for harm nor for no harm and has strong but inconclusive harm evidence
    (:func:`sequential.suspicious`). Each gets ``extra_shadows_per_stratum`` more (never more than its production
    VMs not already cloned), straddling bounds first, then suspect tests, each in stratum order, at most
    ``max_extra_shadows`` in all; a stratum the bound
    already condemns, or shown free of harm, gets none. Returns the count per stratum and the decisions saying why.
    """
    candidates: list[tuple[int, str, str, dict[str, float]]] = []
    for key in sorted(stratum_sizes):
        t = tallies.get(key)
        st = states.get(key)
        if t is not None and t.trials:
            b = failure_rate_bound(t.failures, t.trials, policy.bound_confidence)
            if b.lower > policy.tolerable_failure_rate:
                continue
            if t.failures and b.upper > policy.tolerable_failure_rate:
                candidates.append((0, key, f"{b.describe()} straddles tolerable {policy.tolerable_failure_rate:.1%}",
                                   {"failures": t.failures, "shadows": t.trials, "lower": round(b.lower, 4),
                                    "upper": round(b.upper, 4)}))
                continue
        if st is not None and st.verdict not in (SeqVerdict.HARM, SeqVerdict.NO_HARM) and suspicious(st):
            top = max(st.signals, key=lambda s: s.log_e_harm)
            candidates.append((1, key, f"sequential test undecided at minute {st.minute:g} with harm evidence on "
                               f"{top.signal} (mean change {top.mean:+.1%})",
                               {"log_e_harm": round(top.log_e_harm, 3), "minute": st.minute}))
    budget = policy.max_extra_shadows
    added: dict[str, int] = {}
    decisions: list[Decision] = []
    for _, key, why, data in sorted(candidates):
        room = stratum_sizes[key] - sources_used.get(key, 0)
        n = min(policy.extra_shadows_per_stratum, room, budget)
        label = Stratum.from_key(key).label
        if n <= 0:
            decisions.append(Decision(DecisionKind.AMBIGUOUS_EVIDENCE, f"stratum {label}: {why}; no shadow can be "
                                      f"added ({room} VMs left to clone, {budget} of the budget of "
                                      f"{policy.max_extra_shadows} extra shadows left)", key, data))
            continue
        budget -= n
        added[key] = n
        decisions.append(Decision(DecisionKind.ADD_SHADOWS, f"stratum {label}: {why}; {n} more shadows before "
                                  f"deciding ({policy.max_extra_shadows - budget} of at most "
                                  f"{policy.max_extra_shadows} extra)", key, {**data, "added": n}))
    return added, decisions


def shadow_watch_verdict(states: Mapping[str, StratumSequence], pooled: StratumSequence | None,
                         included: Collection[str], design: SequentialDesign, wave: int) -> Decision | None:
    """Halt production when the shadows kept through the waves show harm, with the family's error rate controlled.

    The shadows took the change first and lead production by the bake and more: an effect whose onset comes after
    the bake shows on them before it reaches most of production. They are watched for longer than the bake and over
    every stratum at once, so a stratum alone must show harm at ``alpha / m`` (Bonferroni over the ``m`` proceeding
    strata watched, on top of the signals'), and the proceeding strata's shadows pooled (``pooled``) at ``alpha``
    (a skipped stratum's shadows never stop the waves): a good change is
    halted by the watch with probability at most ``2 alpha`` over the whole watch (Ville's inequality for each
    e-process). The judge's fixed-sample tests are not used here: looked at every few minutes for an hour, their
    false-alarm rate would grow with every look.
    """
    watched = [states[k] for k in sorted(included) if k in states]
    m = max(len(watched), 1)
    k = max(len(design.signals), 1)
    harmed: list[tuple[str, str, float]] = []
    for st in watched:
        for sig in st.signals:
            level = thresholds(design, k, sig.signal)[0] + math.log(m)
            if sig.n >= design.min_increments and sig.log_e_harm >= level and sig.harm_shown:
                harmed.append((st.stratum_key, sig.signal, sig.log_e_harm))
                break
    fleet = pooled
    shown = fleet is not None and fleet.verdict is SeqVerdict.HARM
    if not harmed and not shown:
        return None
    parts = []
    if shown and fleet is not None:
        sig = max(fleet.signals, key=lambda s: s.log_e_harm)
        parts.append(f"the shadows pooled show harm on {sig.signal} (mean change {sig.mean:+.1%}, e-value "
                     f"{math.exp(min(sig.log_e_harm, 700.0)):.3g}, alpha {design.alpha:g}) at bake minute "
                     f"{fleet.minute:g}")
    if harmed:
        key, signal, log_e = harmed[0]
        parts.append(f"{len(harmed)} of {m} proceeding strata show harm at alpha {design.alpha:g}/{m}, e.g. "
                     f"{Stratum.from_key(key).label} on {signal} (e-value {math.exp(min(log_e, 700.0)):.3g})")
    return Decision(DecisionKind.HALT_IN_PRODUCTION, f"after wave {wave + 1}: " + "; ".join(parts)
                    + ": the shadows lead production, so no further wave",
                    harmed[0][0] if harmed else "fleet", {"strata": len(harmed), "pooled": shown, "wave": wave})
