from __future__ import annotations

import pytest

from shared.domain.decisions import (
    ShadowTally,
    VmRisk,
    adaptive_error_threshold,
    assess_changed_vms,
    assess_probe_failures,
    cap_at_maximum,
    capacity_refused,
    decide_before_production,
    expected_failure_rate,
    forecast_rollbacks,
    plan_capacity,
    plan_scale_back,
    plan_waves,
    settle_capacity,
    withdraw_change,
)
from shared.domain.model import Stratum
from shared.domain.policy import RolloutPolicy
from shared.domain.scale_set_limits import max_instances

A = Stratum("web", "Standard_D2s_v5", "ubuntu-20.04", "1").key
B = Stratum("web", "Standard_D4s_v5", "ubuntu-22.04", "2").key


def risks(a: float | None, b: float | None) -> list[VmRisk]:
    """Ten VMs in stratum A, thirty in B."""
    return [VmRisk(f"a{i}", A, a) for i in range(10)] + [VmRisk(f"b{i}", B, b) for i in range(30)]


def test_halts_before_production_when_confident_failures_cover_the_halt_share() -> None:
    plan = decide_before_production(risks(0.95, 0.97), RolloutPolicy())
    assert plan.halt
    assert plan.included == []
    assert plan.decisions[0].kind == "halt_before_production"
    assert "40/40 VMs = 100% >= halt share 50%" in plan.decisions[0].reason


def test_skips_only_the_stratum_predicted_to_fail_and_proceeds_with_the_rest() -> None:
    plan = decide_before_production(risks(0.95, 0.02), RolloutPolicy())
    assert not plan.halt
    assert sorted(plan.skipped) == sorted(f"a{i}" for i in range(10))
    assert sorted(plan.included) == sorted(f"b{i}" for i in range(30))
    skip = [d for d in plan.decisions if d.kind == "skip_stratum"]
    assert len(skip) == 1 and skip[0].subject == A
    assert "predicted failure 0.95 >= skip threshold 0.5" in skip[0].reason
    assert "web/D2s_v5/ubuntu-20.04/z1" in skip[0].reason


def test_exactly_the_halt_share_of_confident_failures_halts() -> None:
    plan = decide_before_production(risks(0.95, 0.02)[:20], RolloutPolicy())
    assert plan.halt  # 10 of 20 = 50% >= 50%


def test_predicted_rate_counts_only_the_vms_that_proceed() -> None:
    scored = [VmRisk(r.vm_id, r.stratum_key, r.probability, "model") for r in risks(0.95, 0.04)]
    plan = decide_before_production(scored, RolloutPolicy())
    assert plan.predicted_rate == pytest.approx(0.04)


def test_uncovered_stratum_is_included_and_said_so() -> None:
    plan = decide_before_production(risks(None, 0.01), RolloutPolicy())
    assert not plan.halt
    assert len(plan.included) == 40
    assert any(d.kind == "uncovered_stratum" and d.subject == A for d in plan.decisions)


def test_vms_at_or_above_snapshot_probability_are_at_risk() -> None:
    plan = decide_before_production(risks(0.2, 0.01), RolloutPolicy(snapshot_probability=0.1))
    assert sorted(plan.at_risk) == sorted(f"a{i}" for i in range(10))


def test_expected_rate_follows_the_prediction_but_never_exceeds_the_tolerable_rate() -> None:
    policy = RolloutPolicy(base_error_threshold=0.01, tolerable_failure_rate=0.02)
    assert adaptive_error_threshold(0.0, policy).value == pytest.approx(0.01)
    assert adaptive_error_threshold(0.015, policy).value == pytest.approx(0.015)
    # crash-partial: the model predicted 0.094 for the VMs that proceed; production must not tolerate that
    assert adaptive_error_threshold(0.094, policy).value == pytest.approx(0.02)
    assert adaptive_error_threshold(0.5, policy.with_overrides({"max_error_threshold": 0.015})).value == 0.015


def test_surprise_test_halts_when_failures_are_too_many_for_the_expected_rate() -> None:
    t = adaptive_error_threshold(0.0, RolloutPolicy())  # expects 0.5%, halts below a 5% tail
    assert assess_changed_vms(15, 0, t).kind == "continue"
    assert assess_changed_vms(15, 1, t).kind == "continue"  # P(>=1 of 15 | 0.5%) = 0.072: one benign failure
    halt = assess_changed_vms(15, 2, t)  # P(>=2 of 15 | 0.5%) = 0.0025
    assert halt.kind == "halt_in_production"
    assert halt.data["p_value"] == pytest.approx(0.002514, abs=1e-5)
    assert "2 failing of 15 changed VMs" in halt.reason and "< 0.05" in halt.reason


def test_ten_percent_crashing_in_production_halts_by_the_second_wave_whatever_the_model_predicted() -> None:
    """300 VMs, 10% crash on apply: waves of 15 and 60; the old rule let the model lift the threshold to 20%."""
    t = adaptive_error_threshold(0.094, RolloutPolicy())
    assert assess_changed_vms(75, 7, t).kind == "halt_in_production"


def test_a_stratum_with_one_apply_failure_of_two_shadows_is_skipped_by_its_bound() -> None:
    plan = decide_before_production(risks(0.01, 0.01), RolloutPolicy(),
                                    {A: ShadowTally(1, 2), B: ShadowTally(0, 5)})
    assert not plan.halt
    assert sorted(plan.skipped) == sorted(f"a{i}" for i in range(10))
    skip = next(d for d in plan.decisions if d.kind == "skip_stratum")
    assert skip.subject == A and skip.data["lower"] == pytest.approx(0.0253, abs=1e-4)
    assert "lower bound > tolerable 2.0%" in skip.reason


def test_the_fleet_halts_when_the_strata_that_would_proceed_still_fail_beyond_the_tolerable_rate() -> None:
    plan = decide_before_production(risks(0.01, 0.01), RolloutPolicy(),
                                    {A: ShadowTally(1, 6), B: ShadowTally(1, 6)})
    assert plan.halt and plan.included == []
    assert [d.kind for d in plan.decisions] == ["ambiguous_evidence", "ambiguous_evidence", "halt_before_production"]
    halt = plan.decisions[-1]
    assert halt.data["failures"] == 2 and halt.data["shadows"] == 12
    assert halt.data["lower"] > 0.02  # 1 of 6 alone is ambiguous (lower 0.0085); 2 of 12 pooled is not


def test_one_failure_among_many_shadows_is_ambiguous_and_its_stratum_is_snapshotted() -> None:
    plan = decide_before_production(risks(0.01, 0.01), RolloutPolicy(),
                                    {A: ShadowTally(0, 3), B: ShadowTally(1, 6)})
    assert not plan.halt and len(plan.included) == 40
    amb = next(d for d in plan.decisions if d.kind == "ambiguous_evidence")
    assert amb.subject == B and "needs 149 failure-free shadows" in amb.reason
    assert sorted(plan.at_risk) == sorted(f"b{i}" for i in range(30))


def test_clean_shadows_change_nothing_the_predictions_decide() -> None:
    plan = decide_before_production(risks(0.95, 0.02), RolloutPolicy(), {A: ShadowTally(0, 2), B: ShadowTally(0, 3)})
    assert sorted(plan.skipped) == sorted(f"a{i}" for i in range(10))


def test_waves_are_proportional_slices_with_every_stratum_in_the_first_wave() -> None:
    by = {A: [f"a{i}" for i in range(20)], B: [f"b{i}" for i in range(80)], "x|y|z|1": ["c0"]}
    waves = plan_waves(by, RolloutPolicy(wave_fractions=(0.1, 0.4, 0.5)), salt="r1")
    assert sum(len(w) for w in waves) == 101
    assert len({v for w in waves for v in w}) == 101
    first = set(waves[0])
    assert first & set(by[A]) and first & set(by[B]) and "c0" in first
    assert len(waves[0]) == 2 + 8 + 1
    assert plan_waves(by, RolloutPolicy(wave_fractions=(0.1, 0.4, 0.5)), salt="r1") == waves


def test_scale_out_covers_the_rollback_load_that_demand_needs() -> None:
    d = plan_capacity("web", demand_units=36.4, serving_after=31, leaving=9, extra_now=0, policy=RolloutPolicy())
    assert d is not None and d.kind == "scale_out" and d.data["add"] == 6
    assert "demand 36.4 VM units > 31 serving while 9 VMs are out for rollback; +6 instances" in d.reason
    assert plan_capacity("web", demand_units=20.0, serving_after=31, leaving=5, extra_now=0,
                         policy=RolloutPolicy()) is None


def test_scale_out_never_exceeds_the_vms_leaving_service() -> None:
    """A scale set that was short before the rollout is not resized by the rollout."""
    d = plan_capacity("web", demand_units=160.0, serving_after=140, leaving=3, extra_now=2, policy=RolloutPolicy())
    assert d is not None and d.data["add"] == 3 and d.data["extra_total"] == 5
    assert plan_capacity("web", demand_units=160.0, serving_after=140, leaving=0, extra_now=0,
                         policy=RolloutPolicy()) is None


def test_scale_back_waits_for_pending_rollbacks() -> None:
    assert plan_scale_back("web", extra_now=4, pending_rollbacks=1) is None
    back = plan_scale_back("web", extra_now=4, pending_rollbacks=0)
    assert back is not None and back.kind == "scale_in" and back.data["remove"] == 4
    assert plan_scale_back("web", extra_now=0, pending_rollbacks=0) is None


def test_pooled_probe_failures_above_the_tolerable_rate_halt_production() -> None:
    policy = RolloutPolicy()  # tolerable 1% of probes
    assert assess_probe_failures(2, 720, policy) is None
    halt = assess_probe_failures(15, 720, policy)
    assert halt is not None and halt.kind == "halt_in_production"
    assert "15/720 health probes" in halt.reason and halt.data["p_value"] < 0.05
    assert assess_probe_failures(0, 0, policy) is None


def test_the_expected_rate_takes_the_models_probability_but_never_the_judges_score() -> None:
    risks_ = [VmRisk("a0", A, 0.04, "model"), VmRisk("b0", B, 0.04, "judge")]
    rate = expected_failure_rate(risks_, {A: ShadowTally(0, 2), B: ShadowTally(1, 10)})
    assert rate == pytest.approx((0.04 + 0.1) / 2)
    assert expected_failure_rate([VmRisk("b0", B, 0.04, "judge")], {}) == 0.0


def test_a_surprise_after_the_last_wave_withdraws_the_change_from_every_vm_not_yet_failed() -> None:
    verdict = assess_changed_vms(163, 3, adaptive_error_threshold(0.0, RolloutPolicy()))
    assert verdict.kind == "halt_in_production"  # P(>= 3 of 163 | 0.5%) = 0.049
    d = withdraw_change(["a", "b", "c", "d"], {"a": "health probe failed"}, verdict)
    assert d.kind == "withdraw_change" and sorted(d.data["vms"]) == ["b", "c", "d"]
    assert all(why.startswith("change withdrawn: 3 failing of 163") for why in d.data["vms"].values())


def test_a_scale_out_ahead_of_expected_failures_says_so_and_not_out_for_rollback() -> None:
    d = plan_capacity("web", demand_units=142.3, serving_after=136, leaving=14, extra_now=0, policy=RolloutPolicy(),
                      basis="are expected to fail (predicted risk of 120 at-risk VMs)")
    assert d is not None and "14 VMs are expected to fail" in d.reason and "out for rollback" not in d.reason


def test_rollbacks_are_forecast_from_the_rate_seen_so_far_times_the_vms_still_to_change() -> None:
    n, why = forecast_rollbacks(changed=20, rolled_back=3, to_change=60, expected_by_risk=14.0)
    assert n == 9 and "3 of 20 changed VMs rolled back so far" in why and "15%" in why
    assert forecast_rollbacks(changed=20, rolled_back=0, to_change=60, expected_by_risk=14.0)[0] == 0
    n, why = forecast_rollbacks(changed=0, rolled_back=0, to_change=60, expected_by_risk=13.6)
    assert n == 14 and "predicted risk" in why


def test_borrowed_instances_go_back_when_no_rollback_is_expected_any_more() -> None:
    d = settle_capacity("web", demand_units=142.3, serving=150, expected=0, basis="", extra_now=7,
                        pending_rollbacks=0, policy=RolloutPolicy())
    assert d is not None and d.kind == "scale_in" and d.data == {"remove": 7, "extra_total": 0}
    assert "passed their wave's check" in d.reason


def test_settling_holds_what_the_forecast_rollbacks_need_and_waits_for_pending_ones() -> None:
    d = settle_capacity("web", demand_units=142.3, serving=150, expected=12, basis="are forecast to roll back",
                        extra_now=0, pending_rollbacks=0, policy=RolloutPolicy())
    assert d is not None and d.kind == "scale_out" and d.data["extra_total"] == 5  # 142.3 - (150 - 12) -> 5
    assert "12 VMs are forecast to roll back" in d.reason
    assert settle_capacity("web", demand_units=142.3, serving=150, expected=0, basis="", extra_now=7,
                           pending_rollbacks=2, policy=RolloutPolicy()) is None
    assert settle_capacity("web", demand_units=142.3, serving=150, expected=12, basis="", extra_now=5,
                           pending_rollbacks=0, policy=RolloutPolicy()) is None


def test_a_scale_out_is_held_to_the_scale_sets_maximum_and_says_so_with_the_numbers() -> None:
    d = plan_capacity("ss000", demand_units=1000.0, serving_after=960, leaving=40, extra_now=0, policy=RolloutPolicy())
    assert d is not None and d.data["extra_total"] == 40
    full = cap_at_maximum(d, "ss000", original=1000, maximum=1000, extra_now=0)
    assert full.kind == "scale_out" and full.data["add"] == 0 and full.data["extra_total"] == 0
    assert full.data["wanted_extra_total"] == 40 and full.data["maximum"] == 1000
    assert "+0 instances: at its 1,000-instance maximum (1,000 before the rollout + 0 borrowed)" in full.reason
    assert "demand 1000.0 VM units > 960 serving while 40 VMs are out for rollback" in full.reason
    near = cap_at_maximum(d, "ss000", original=990, maximum=1000, extra_now=4)
    assert (near.data["add"], near.data["extra_total"]) == (6, 10) and "+6 instances: at its 1,000" in near.reason
    assert cap_at_maximum(d, "ss000", original=900, maximum=1000, extra_now=0) is d  # room enough: unchanged


def test_a_capped_settle_never_gives_back_what_is_held_and_scale_ins_pass_untouched() -> None:
    out = settle_capacity("web", demand_units=142.3, serving=150, expected=12, basis="are forecast to roll back",
                          extra_now=0, pending_rollbacks=0, policy=RolloutPolicy())
    assert out is not None
    held = cap_at_maximum(out, "web", original=98, maximum=100, extra_now=3)  # 3 held, room for 2
    assert held.data["extra_total"] == 3 and held.data["add"] == 0
    back = settle_capacity("web", demand_units=142.3, serving=150, expected=0, basis="", extra_now=7,
                           pending_rollbacks=0, policy=RolloutPolicy())
    assert back is not None and cap_at_maximum(back, "web", original=100, maximum=100, extra_now=7) is back


def test_a_refused_scale_out_borrows_nothing_and_says_the_rollbacks_proceed() -> None:
    d = capacity_refused("ss000", 1012, 0, "400 InvalidParameter sku.capacity must be 0..1000 (got 1012)")
    assert d.kind == "scale_out" and d.data == {"add": 0, "extra_total": 0, "refused": 1012}
    assert "capacity 1,012 refused" in d.reason and "rollbacks proceed" in d.reason


def test_the_instance_limit_is_100_in_a_single_placement_group_else_1000() -> None:
    assert max_instances("Uniform", True) == 100
    assert max_instances("Uniform", None) == 100  # unknown: the lower limit, never refused
    assert max_instances("Uniform", False) == 1000
    assert max_instances("Flexible", False) == 1000 == max_instances("Flexible", None)
