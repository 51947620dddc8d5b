"""Risk-adaptive waves: the evidence picks the level; every level starts with a slice of every stratum."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.policy import DEFAULT_POLICY, RolloutPolicy
from shared.domain.sequential import SeqVerdict, SignalEvidence, StratumSequence
from shared.domain.waves import (
    BakeEvidence,
    RiskLevel,
    WaveDesign,
    WaveShape,
    assess_risk,
    plan_adaptive_waves,
    watch_cadence,
)

DESIGN = WaveDesign.from_policy(DEFAULT_POLICY)
CLEAN = BakeEvidence(no_harm=3)


def fleet(sizes: dict[str, int]) -> dict[str, list[str]]:
    return {k: [f"{k}-vm{i}" for i in range(n)] for k, n in sizes.items()}


def test_a_clean_bake_and_a_low_prediction_give_fewer_waves_with_short_sequentially_tested_watches() -> None:
    plan = plan_adaptive_waves(fleet({"a": 100, "b": 40, "c": 5}), 0.002, CLEAN, DESIGN, "s")
    assert plan.level is RiskLevel.LOW
    assert len(plan.waves) < len(DEFAULT_POLICY.wave_fractions)
    assert plan.waves[0].min_watch_minutes < DEFAULT_POLICY.wave_watch_minutes
    assert plan.waves[0].max_watch_minutes == DEFAULT_POLICY.wave_watch_minutes
    assert "low risk" in plan.reason and "3 strata no harm" in plan.reason


def test_an_undecided_stratum_without_pooled_no_harm_keeps_the_policy_waves() -> None:
    plan = plan_adaptive_waves(fleet({"a": 100}), 0.002, BakeEvidence(no_harm=2, inconclusive=1), DESIGN, "s")
    assert plan.level is RiskLevel.MODERATE and "no harm not shown" in plan.reason
    assert [len(w.vm_ids) for w in plan.waves] == [5, 20, 35, 40]
    assert {w.min_watch_minutes for w in plan.waves} == {float(DEFAULT_POLICY.wave_watch_minutes)}


@pytest.mark.parametrize(("rate", "bake", "why"), [
    (0.002, BakeEvidence(no_harm=3, harmed_skipped=1), "1 strata showed harm"),
    (0.08, CLEAN, "predicted rate >= 5%"),
])
def test_any_sign_of_harm_or_a_high_prediction_gives_more_smaller_waves_watched_longer(
        rate: float, bake: BakeEvidence, why: str) -> None:
    plan = plan_adaptive_waves(fleet({"a": 200}), rate, bake, DESIGN, "s")
    assert plan.level is RiskLevel.HIGH and why in plan.reason
    assert len(plan.waves) > len(DEFAULT_POLICY.wave_fractions)
    assert len(plan.waves[0].vm_ids) < 0.05 * 200
    assert plan.waves[0].min_watch_minutes > DEFAULT_POLICY.wave_watch_minutes


def test_an_uncovered_stratum_is_doubt_even_with_a_low_prediction() -> None:
    level, reason = assess_risk(0.0, BakeEvidence(no_harm=4, uncovered=1), DESIGN)
    assert level is RiskLevel.MODERATE and "1 uncovered" in reason


def test_pooled_no_harm_makes_a_bake_with_undecided_strata_clean_unless_one_is_suspect() -> None:
    pooled = BakeEvidence(no_harm=5, inconclusive=20, fleet_no_harm=True)
    assert assess_risk(0.002, pooled, DESIGN)[0] is RiskLevel.LOW
    suspect = pooled.model_copy(update={"suspicious": 1})
    level, reason = assess_risk(0.002, suspect, DESIGN)
    assert level is RiskLevel.MODERATE and "suspect strata" in reason


def state(verdict: SeqVerdict, log_e_harm: float = 0.0) -> StratumSequence:
    ev = SignalEvidence(signal="cpu_pct", baseline_ss=1.0, baseline_df=9, clip=1.0, margin=0.05, tolerable=0.25,
                        segment_n=(0,), segment_total=(0.0,), log_e_harm=log_e_harm)
    return StratumSequence(stratum_key="k", signals=(ev,), verdict=verdict)


def test_bake_evidence_counts_the_included_strata_by_verdict_and_the_harmed_ones_left_out() -> None:
    states = {"a": state(SeqVerdict.NO_HARM), "b": state(SeqVerdict.INCONCLUSIVE, log_e_harm=3.0),
              "c": state(SeqVerdict.HARM), "d": state(SeqVerdict.CONTINUE)}
    bake = BakeEvidence.from_states(states, ["a", "b", "d", "e"], fleet=state(SeqVerdict.NO_HARM))
    assert bake == BakeEvidence(no_harm=1, inconclusive=2, suspicious=1, uncovered=1, harmed_skipped=1,
                                fleet_no_harm=True)


def test_a_design_where_more_risk_means_fewer_waves_is_refused() -> None:
    quick = WaveShape(fractions=(1.0,), min_watch_minutes=1.0, max_watch_minutes=1.0)
    with pytest.raises(ValueError, match="more risk must never mean fewer waves"):
        WaveDesign(high=quick)


def test_the_design_takes_the_policy_waves_as_its_moderate_level() -> None:
    policy = RolloutPolicy(wave_fractions=(0.1, 0.4, 0.5), wave_watch_minutes=20)
    d = WaveDesign.from_policy(policy)
    assert d.moderate.fractions == (0.1, 0.4, 0.5) and d.moderate.min_watch_minutes == 20.0
    assert len(d.low.fractions) == 2 and len(d.high.fractions) == 4 and d.high.max_watch_minutes == 40.0


# ---------------------------------------------------------------------------------------------- properties
strata_sizes = st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3), st.integers(1, 60), min_size=1,
                               max_size=8)
bakes = st.builds(BakeEvidence, no_harm=st.integers(0, 5), inconclusive=st.integers(0, 3),
                  suspicious=st.integers(0, 1), uncovered=st.integers(0, 2), harmed_skipped=st.integers(0, 2),
                  fleet_no_harm=st.booleans())
rates = st.floats(0.0, 0.3, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(strata_sizes, rates, bakes, st.text(max_size=5))
def test_every_included_vm_goes_in_exactly_one_wave_and_the_first_wave_holds_every_stratum(
        sizes: dict[str, int], rate: float, bake: BakeEvidence, salt: str) -> None:
    vms = fleet(sizes)
    plan = plan_adaptive_waves(vms, rate, bake, DESIGN, salt)
    placed = [v for w in plan.waves for v in w.vm_ids]
    assert sorted(placed) == sorted(v for members in vms.values() for v in members)
    assert all(w.vm_ids for w in plan.waves)
    first = set(plan.waves[0].vm_ids)
    assert all(first & set(members) for members in vms.values())
    assert plan == plan_adaptive_waves(vms, rate, bake, DESIGN, salt)  # deterministic: safe to replay


@settings(max_examples=200, deadline=None)
@given(rates, rates, bakes)
def test_more_predicted_risk_never_means_fewer_waves_or_shorter_watches(a: float, b: float,
                                                                        bake: BakeEvidence) -> None:
    lo, hi = sorted((a, b))
    vms = fleet({"x": 500})
    p_lo = plan_adaptive_waves(vms, lo, bake, DESIGN, "s")
    p_hi = plan_adaptive_waves(vms, hi, bake, DESIGN, "s")
    assert len(p_hi.waves) >= len(p_lo.waves)
    assert p_hi.waves[0].min_watch_minutes >= p_lo.waves[0].min_watch_minutes
    assert len(p_hi.waves[0].vm_ids) <= len(p_lo.waves[0].vm_ids)


@settings(max_examples=200, deadline=None)
@given(rates, bakes, st.integers(0, 3), st.integers(0, 2), st.integers(0, 2), st.booleans())
def test_more_doubt_from_the_bake_never_means_fewer_waves(rate: float, bake: BakeEvidence, more_suspect: int,
                                                          more_harm: int, more_uncovered: int,
                                                          lose_pooled: bool) -> None:
    worse = bake.model_copy(update={"inconclusive": bake.inconclusive + more_suspect,
                                    "suspicious": bake.suspicious + more_suspect,
                                    "harmed_skipped": bake.harmed_skipped + more_harm,
                                    "uncovered": bake.uncovered + more_uncovered,
                                    "fleet_no_harm": bake.fleet_no_harm and not lose_pooled})
    order = [RiskLevel.LOW, RiskLevel.MODERATE, RiskLevel.HIGH]
    assert order.index(assess_risk(rate, worse, DESIGN)[0]) >= order.index(assess_risk(rate, bake, DESIGN)[0])


def test_the_watch_after_the_waves_looks_often_enough_that_one_waves_late_onset_is_found_before_the_next_waves(
) -> None:
    policy = RolloutPolicy(watch_interval_minutes=10, bake_check_minutes=2, unhealthy_probe_minutes=3)
    c = watch_cadence([28.9, 35.3, 45.5], policy)  # leads 6.4 and 10.2 min: the shorter one binds
    assert c.interval_minutes == pytest.approx(6.4 - 3.0)
    assert "6.4 min" in c.reason and "3 min" in c.reason
    assert c.interval_minutes + policy.unhealthy_probe_minutes <= 6.4 + 1e-9


def test_the_watch_cadence_stays_between_the_bake_looks_and_the_policy_interval() -> None:
    policy = RolloutPolicy(watch_interval_minutes=10, bake_check_minutes=2, unhealthy_probe_minutes=3)
    assert watch_cadence([0.0, 4.0, 40.0], policy).interval_minutes == 2.0  # a lead too short to keep fully
    assert watch_cadence([0.0, 30.0, 60.0], policy).interval_minutes == 10.0  # leads long enough: the policy's
    assert watch_cadence([12.0], policy).interval_minutes == 10.0  # one wave: no lead to keep
    assert watch_cadence([], policy).interval_minutes == 10.0


@given(st.lists(st.floats(0.0, 500.0), min_size=2, max_size=6), st.floats(0.0, 30.0))
@settings(max_examples=50, deadline=None)
def test_a_longer_lead_between_waves_never_means_more_frequent_looks(starts: list[float], extra: float) -> None:
    ordered = sorted(starts)
    spread = [t + i * extra for i, t in enumerate(ordered)]
    assert (watch_cadence(spread, DEFAULT_POLICY).interval_minutes
            >= watch_cadence(ordered, DEFAULT_POLICY).interval_minutes)
