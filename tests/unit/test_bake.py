"""The bake's decisions: the sequential verdicts feed the one halt rule, ambiguous strata get more shadows (within a
budget), and shadows kept through the waves stop production when they fail the halt rule."""

from __future__ import annotations

import math

from shared.domain.bake import bake_tallies, baseline_wait, extra_shadows, shadow_watch_verdict
from shared.domain.decisions import ShadowTally, VmRisk, decide_before_production
from shared.domain.kinds import DecisionKind
from shared.domain.model import Stratum
from shared.domain.policy import DEFAULT_POLICY, RolloutPolicy
from shared.domain.sequential import SequentialDesign, SeqVerdict, SignalEvidence, StratumSequence, thresholds

A = Stratum("web", "Standard_D2s_v5", "ubuntu-22.04", "1").key
B = Stratum("web", "Standard_D2s_v5", "ubuntu-22.04", "2").key  # A's twin group
C = Stratum("api", "Standard_D4s_v5", "ubuntu-22.04", "1").key


def seq(key: str, verdict: SeqVerdict, log_e_harm: float = 0.0, minute: float = 12.0) -> StratumSequence:
    sig = SignalEvidence(signal="cpu_pct", baseline_ss=1.0, baseline_df=10, clip=1.0, margin=0.05, tolerable=0.25,
                         n=20, total=2.0, segment_n=(20,), segment_total=(2.0,), log_e_harm=log_e_harm)
    return StratumSequence(stratum_key=key, signals=(sig,), verdict=verdict, minute=minute, looks=6)


def risks(keys: dict[str, int]) -> list[VmRisk]:
    return [VmRisk(f"{k}-{i}", k, None) for k, n in keys.items() for i in range(n)]


def test_harm_shown_by_the_sequential_test_counts_every_changed_shadow_of_the_stratum() -> None:
    hard = {A: ShadowTally(0, 2), C: ShadowTally(0, 2)}
    tallies = bake_tallies(hard, {A: seq(A, SeqVerdict.HARM), C: seq(C, SeqVerdict.CONTINUE)})
    assert tallies[A] == ShadowTally(2, 2) and tallies[C] == ShadowTally(0, 2)
    plan = decide_before_production(risks({A: 10, C: 10}), DEFAULT_POLICY, tallies)
    assert not plan.halt and any(d.kind is DecisionKind.SKIP_STRATUM and d.subject == A for d in plan.decisions)


def test_an_apply_failure_still_skips_its_stratum_whatever_the_sequential_test_says() -> None:
    tallies = bake_tallies({A: ShadowTally(1, 2), C: ShadowTally(0, 2)},
                           {A: seq(A, SeqVerdict.NO_HARM), C: seq(C, SeqVerdict.NO_HARM)})
    assert tallies[A] == ShadowTally(1, 2)  # a seen failure is never explained away by clean signals
    plan = decide_before_production(risks({A: 10, C: 10}), DEFAULT_POLICY, tallies)
    assert {r for r in plan.skipped if r.startswith(A)} == {f"{A}-{i}" for i in range(10)}


def test_every_stratum_harmed_halts_before_production() -> None:
    tallies = bake_tallies({A: ShadowTally(0, 2), C: ShadowTally(0, 2)},
                           {A: seq(A, SeqVerdict.HARM), C: seq(C, SeqVerdict.HARM)})
    plan = decide_before_production(risks({A: 10, C: 10}), DEFAULT_POLICY, tallies)
    assert plan.halt and plan.decisions[-1].kind is DecisionKind.HALT_BEFORE_PRODUCTION


def test_a_short_baseline_only_when_every_stratum_has_a_running_control_twin() -> None:
    policy = RolloutPolicy(baseline_minutes=10, twin_baseline_minutes=4)
    group = Stratum.from_key(A).twin_group
    short = baseline_wait([A, B], [group], policy)
    assert short.minutes == 4 and "control twin" in short.reason
    full = baseline_wait([A, C], [group], policy)
    assert full.minutes == 10 and "1 of 2 strata have no control twin" in full.reason
    assert baseline_wait([A], [group], DEFAULT_POLICY).minutes == DEFAULT_POLICY.baseline_minutes


def test_a_straddling_bound_gets_more_shadows_within_the_budget_and_says_why() -> None:
    policy = RolloutPolicy(max_extra_shadows=3, extra_shadows_per_stratum=2)
    tallies = {A: ShadowTally(1, 6), C: ShadowTally(1, 6)}  # 1 of 6: [0.009, 0.58] straddles 2%
    added, decisions = extra_shadows({}, tallies, {A: 50, C: 50}, {A: 6, C: 6}, policy)
    assert added == {C: 2, A: 1}  # in stratum order: the budget of 3 runs out on the second
    assert [d.kind for d in decisions] == [DecisionKind.ADD_SHADOWS, DecisionKind.ADD_SHADOWS]
    assert "straddles tolerable 2.0%" in decisions[0].reason and decisions[0].data["failures"] == 1


def test_a_suspect_undecided_stratum_gets_more_shadows_but_a_decided_one_does_not() -> None:
    states = {A: seq(A, SeqVerdict.INCONCLUSIVE, log_e_harm=math.log(50.0)), B: seq(B, SeqVerdict.NO_HARM),
              C: seq(C, SeqVerdict.INCONCLUSIVE, log_e_harm=0.1)}
    added, decisions = extra_shadows(states, {}, {A: 10, B: 10, C: 10}, {A: 2, B: 2, C: 2}, DEFAULT_POLICY)
    assert added == {A: DEFAULT_POLICY.extra_shadows_per_stratum}
    assert "sequential test undecided" in decisions[0].reason


def test_a_condemned_stratum_or_one_with_no_vm_left_to_clone_gets_none() -> None:
    tallies = {A: ShadowTally(2, 2), C: ShadowTally(1, 6)}
    added, decisions = extra_shadows({}, tallies, {A: 10, C: 6}, {A: 2, C: 6}, DEFAULT_POLICY)
    assert added == {}
    assert [d.kind for d in decisions] == [DecisionKind.AMBIGUOUS_EVIDENCE] and "no shadow can be added" in \
        decisions[0].reason


DESIGN = SequentialDesign()


def test_a_proceeding_stratum_with_harm_beyond_the_family_wise_level_halts_production() -> None:
    level = thresholds(DESIGN, len(DESIGN.signals), "cpu_pct")[0]
    strong = {A: seq(A, SeqVerdict.HARM, log_e_harm=level + math.log(2) + 0.1, minute=29.0),
              C: seq(C, SeqVerdict.NO_HARM)}
    d = shadow_watch_verdict(strong, None, {A, C}, DESIGN, wave=1)
    assert d is not None and d.kind is DecisionKind.HALT_IN_PRODUCTION and d.subject == A
    assert "after wave 2" in d.reason and "1 of 2 proceeding strata show harm at alpha 0.01/2" in d.reason


def test_harm_a_stratum_shows_only_at_its_own_level_does_not_halt_the_waves_when_many_are_watched() -> None:
    level = thresholds(DESIGN, len(DESIGN.signals), "cpu_pct")[0]
    states = {f"s{i}|x|y|1": seq(f"s{i}|x|y|1", SeqVerdict.CONTINUE) for i in range(36)}
    states["s0|x|y|1"] = seq("s0|x|y|1", SeqVerdict.HARM, log_e_harm=level + 0.5)  # alpha, not alpha / 36
    assert shadow_watch_verdict(states, None, set(states), DESIGN, wave=0) is None


def test_harm_on_the_pooled_shadows_halts_the_waves() -> None:
    fleet = seq("fleet", SeqVerdict.HARM, log_e_harm=30.0, minute=26.0)
    d = shadow_watch_verdict({C: seq(C, SeqVerdict.CONTINUE)}, fleet, {C}, DESIGN, wave=0)
    assert d is not None and d.subject == "fleet" and "the shadows pooled show harm on cpu_pct" in d.reason


def test_harm_on_a_skipped_stratum_lets_the_waves_go_on() -> None:
    states = {A: seq(A, SeqVerdict.HARM, log_e_harm=50.0), C: seq(C, SeqVerdict.CONTINUE)}
    assert shadow_watch_verdict(states, seq("fleet", SeqVerdict.CONTINUE), {C}, DESIGN, wave=0) is None


def test_a_one_shadow_strata_crossing_halts_the_waves_only_once_it_has_persisted() -> None:
    level = thresholds(DESIGN, len(DESIGN.signals), "cpu_pct")[0] + math.log(2) + 1.0
    pending = seq(A, SeqVerdict.CONTINUE, log_e_harm=level, minute=31.0)
    sig = pending.signals[0].model_copy(update={"confirm_minutes": 8.0, "pending_minute": 30.0})
    states = {A: pending.model_copy(update={"signals": (sig,)}), C: seq(C, SeqVerdict.NO_HARM)}
    assert shadow_watch_verdict(states, None, {A, C}, DESIGN, wave=0) is None  # a transient, until shown otherwise
    shown = sig.model_copy(update={"harm_minute": 38.0})
    states[A] = pending.model_copy(update={"signals": (shown,), "verdict": SeqVerdict.HARM})
    d = shadow_watch_verdict(states, None, {A, C}, DESIGN, wave=0)
    assert d is not None and d.subject == A
