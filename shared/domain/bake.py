"""The bake's own decisions: how long to wait before the change, what the shadows' evidence counts for in the one
halt rule, when to add shadows, and when a shadow watched through the waves stops production.

The sequential procedure itself is :mod:`shared.domain.sequential`; these functions turn its states into the
decisions a rollout records, each pure and returning its reason with the numbers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from .bounds import failure_rate_bound
from .decisions import Decision, ShadowTally
from .kinds import DecisionKind
from .model import Stratum
from .policy import RolloutPolicy
from .sequential import SeqVerdict, StratumSequence, suspicious


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


def shadow_watch_verdict(tallies: Mapping[str, ShadowTally], states: Mapping[str, StratumSequence],
                         included: Collection[str], policy: RolloutPolicy, wave: int) -> Decision | None:
    """Halt production when the shadows of a stratum that proceeds now fail the one halt rule.

    The shadows took the change first and lead production by the bake and more: an effect whose onset comes after
    the bake shows on them before it reaches most of production. ``tallies`` are :func:`bake_tallies` of the
    latest look (the sequential harm test keeps running after the bake, its false-alarm rate still bounded by
    Ville's inequality; a shadow failing outright counts in full); a stratum whose failure-rate bound now lies
    above the tolerable rate stops the rollout before the next wave, as a production surprise would.
    """
    condemned: list[tuple[str, str, dict[str, float]]] = []
    for key in sorted(included):
        t = tallies.get(key)
        if t is None or not t.trials or not t.failures:
            continue
        b = failure_rate_bound(t.failures, t.trials, policy.bound_confidence)
        if b.lower > policy.tolerable_failure_rate:
            st = states.get(key)
            how = (f"sequential harm at bake minute {st.minute:g}" if st is not None and st.verdict is SeqVerdict.HARM
                   else "shadows failing")
            condemned.append((key, f"{how}: {b.describe()}", {"failures": t.failures, "shadows": t.trials,
                                                             "lower": round(b.lower, 4)}))
    if not condemned:
        return None
    key, why, data = condemned[0]
    return Decision(DecisionKind.HALT_IN_PRODUCTION, f"after wave {wave + 1}: the shadows of {len(condemned)} "
                    f"proceeding strata now exceed tolerable {policy.tolerable_failure_rate:.1%}, e.g. "
                    f"{Stratum.from_key(key).label} ({why}); the shadows lead production, so no further wave",
                    key, {**data, "strata": len(condemned), "wave": wave})
