from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.health import MAX_LOAD_SCALE, MIN_ERROR_RATE, Baseline, Baselines, failing_vms, own_error_rates
from shared.domain.judge import Phase, judge_stratum
from shared.domain.model import ApplyResult, ApplyStatus, SignalFrame
from shared.domain.policy import RolloutPolicy

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OK = [ApplyResult("s1", ApplyStatus.OK, 0, 60.0), ApplyResult("s2", ApplyStatus.OK, 0, 70.0)]


def frame(minutes: int, seed: int, *, mem_slope: float = 0.0, errors: float = 1.0, health_fail: float = 0.0,
          cpu_shift: float = 0.0) -> SignalFrame:
    rng = np.random.default_rng(seed)
    shape = (2, minutes)
    t = np.arange(minutes)[None, :]
    return SignalFrame(["s1", "s2"], T0, {
        "cpu_pct": 40 + cpu_shift + rng.normal(0, 2, shape),
        "mem_available_pct": 55 + rng.normal(0, 1, shape) - mem_slope * t,
        "net_bytes": 1e8 * (1 + rng.normal(0, 0.05, shape)),
        "error_count": rng.poisson(errors, shape).astype(float),
        "health_ok": (rng.random(shape) >= health_fail).astype(float),
    })


def test_identical_behaviour_passes() -> None:
    v = judge_stratum("k", "web/D2s", frame(10, 1), frame(30, 2), OK, RolloutPolicy())
    assert v.phase is Phase.SUCCESSFUL
    assert v.score is not None and v.score <= 0.05


def test_failed_apply_on_a_shadow_fails_the_stratum_with_the_exit_code() -> None:
    applies = [OK[0], ApplyResult("s2", ApplyStatus.FAILED, 1, 30.0)]
    v = judge_stratum("k", "web/D2s", frame(10, 1), frame(30, 2), applies, RolloutPolicy())
    assert v.phase is Phase.FAILED and v.score == 1.0
    assert v.reason == "apply failed (exit 1) on 1/2 shadows of stratum web/D2s"


def test_memory_leak_fails_by_projection_before_memory_runs_out() -> None:
    v = judge_stratum("k", "web/D2s", frame(10, 1), frame(30, 2, mem_slope=0.3), OK, RolloutPolicy())
    assert v.phase is Phase.FAILED
    assert v.score is not None and v.score >= 0.9
    assert "available memory falls" in v.reason and "< 1440 min" in v.reason


def test_error_burst_fails_on_error_rate() -> None:
    v = judge_stratum("k", "web/D2s", frame(10, 1), frame(30, 2, errors=12.0), OK, RolloutPolicy())
    assert v.phase is Phase.FAILED
    assert "error_count rose" in v.reason


def test_health_flap_fails_on_health_probe() -> None:
    v = judge_stratum("k", "web/D2s", frame(10, 1), frame(30, 2, health_fail=0.5), OK, RolloutPolicy())
    assert v.phase is Phase.FAILED and "health_ok fell" in v.reason


def test_small_cpu_shift_within_tolerance_passes() -> None:
    v = judge_stratum("k", "web/D2s", frame(10, 1), frame(30, 2, cpu_shift=4.0), OK, RolloutPolicy())
    assert v.phase is Phase.SUCCESSFUL


def test_a_shift_the_untouched_twins_show_too_is_not_blamed_on_the_change() -> None:
    shifted = frame(30, 2, cpu_shift=30.0)
    alone = judge_stratum("k", "web/D2s", frame(10, 1), shifted, OK, RolloutPolicy())
    assert alone.phase is Phase.FAILED and "cpu_pct rose" in alone.reason
    twins = (frame(10, 5), frame(30, 6, cpu_shift=30.0))
    v = judge_stratum("k", "web/D2s", frame(10, 1), shifted, OK, RolloutPolicy(), control=twins)
    assert v.phase is Phase.SUCCESSFUL
    assert "twins +" in next(s.message for s in v.signals if s.signal == "cpu_pct")


def test_no_observation_is_inconclusive_not_a_failure() -> None:
    empty = frame(30, 2)
    for s in empty.signals.values():
        s[:] = np.nan
    v = judge_stratum("k", "web/D2s", frame(10, 1), empty, OK, RolloutPolicy())
    assert v.phase is Phase.INCONCLUSIVE and v.score is None


def fleet_frame(n: int, minutes: int, seed: int) -> SignalFrame:
    rng = np.random.default_rng(seed)
    shape = (n, minutes)
    return SignalFrame([f"v{i}" for i in range(n)], T0, {
        "cpu_pct": 40 + rng.normal(0, 2, shape),
        "mem_available_pct": 55 + rng.normal(0, 1, shape),
        "net_bytes": 1e8 * (1 + rng.normal(0, 0.05, shape)),
        "error_count": rng.poisson(1.5, shape).astype(float),
        "health_ok": np.ones(shape),
    })


def test_failing_vms_names_each_reason() -> None:
    f = fleet_frame(10, 15, 3)
    f.signals["health_ok"][0, -5:] = [1, 0, 0, 0, 1]
    f.signals["health_ok"][1, :] = [1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1]
    f.signals["error_count"][2, -15:] = [20, 22, 25, 30, 21, 24, 20, 26, 23, 22, 21, 23, 22, 25, 24]
    f.signals["mem_available_pct"][3, -3:] = [3.0, 1.5, np.nan]
    applies = [ApplyResult("v4", ApplyStatus.OK, 0, 60), ApplyResult("v5", ApplyStatus.TIMEOUT, None, 900)]
    out = failing_vms(f, {v: Baseline(1.5, 40.0) for v in f.vm_ids}, applies, RolloutPolicy(), peer_error_rate=1.6)
    assert out["v0"] == "health probe failed 3 of the last 5 min (>= 3)"
    assert out["v1"] == "health probe flapping: failed 4 of the last 15 min (>= 4)"
    assert out["v2"] == (
        "error-log rate median 23.0/min over 15 min > 5 x max(load-scaled pre-change 1.5, untouched peers 1.6)/min")
    assert out["v3"] == "available memory 1.5% <= 2.0%"
    assert out["v5"] == "apply timeout (exit None) after 900s"
    assert set(out) == {"v0", "v1", "v2", "v3", "v5"}


def test_a_short_error_burst_is_not_a_failure() -> None:
    f = fleet_frame(10, 15, 4)
    f.signals["error_count"][0, -15:] = [1, 2, 30, 35, 28, 31, 33, 1, 2, 1, 1, 2, 0, 1, 2]  # five minutes of burst
    assert failing_vms(f, {v: Baseline(1.5, 40.0) for v in f.vm_ids}, [], RolloutPolicy()) == {}


def test_errors_that_follow_a_rise_in_load_are_not_a_failure() -> None:
    f = fleet_frame(10, 15, 7)
    f.signals["error_count"][0, :] = 9.0
    f.signals["cpu_pct"][0, :] = 80.0  # twice as busy as before the change: twice the errors is expected
    assert "v0" not in failing_vms(f, {v: Baseline(1.5, 40.0) for v in f.vm_ids}, [], RolloutPolicy())
    f.signals["cpu_pct"][0, :] = 40.0
    assert "v0" in failing_vms(f, {v: Baseline(1.5, 40.0) for v in f.vm_ids}, [], RolloutPolicy())


def test_errors_rising_on_untouched_peers_too_are_not_blamed_on_the_change() -> None:
    f = fleet_frame(10, 15, 5)
    f.signals["error_count"] *= 6  # the whole set is busier than before the change, at its daily peak
    base = {v: Baseline(1.5, 40.0) for v in f.vm_ids}
    assert failing_vms(f, base, [], RolloutPolicy(), peer_error_rate=9.0) == {}
    assert failing_vms(f, base, [], RolloutPolicy())  # without peers: the own baseline only


def test_missing_points_are_not_health_failures() -> None:
    f = fleet_frame(10, 15, 6)
    f.signals["health_ok"][0, -5:] = [np.nan, np.nan, np.nan, 1, 1]
    f.signals["error_count"][1, :] = np.nan
    assert failing_vms(f, {}, [], RolloutPolicy()) == {}


def test_fleet_wide_evidence_fails_strata_that_agree_but_are_too_small_alone() -> None:
    from shared.domain.judge import apply_fleet_evidence

    policy = RolloutPolicy()
    # a faint error rise on each stratum: doubled rate, two shadows each, too few samples to be significant
    small = {k: judge_stratum(k, k, frame(5, 10 + i), frame(8, 20 + i, errors=2.2), OK, policy)
             for i, k in enumerate(("a", "b", "c"))}
    calm = judge_stratum("d", "d", frame(10, 40), frame(30, 41), OK, policy)
    verdicts = {**small, "d": calm}
    assert all(v.phase is Phase.SUCCESSFUL for v in verdicts.values())
    fleet = judge_stratum("fleet", "all strata", frame(40, 50), frame(60, 51, errors=2.2), OK, policy)
    assert fleet.phase is Phase.FAILED
    out = apply_fleet_evidence(verdicts, fleet, policy)
    agreeing = [k for k in "abc" if any(s.signal == "error_count" and s.relative_change > policy.judge_tolerance
                                        and s.p_value < 0.05 for s in small[k].signals)]
    assert agreeing
    for k in agreeing:
        assert out[k].phase is Phase.FAILED and "consistent with fleet-wide evidence" in out[k].reason
    assert out["d"].phase is Phase.SUCCESSFUL


def test_a_flap_failing_a_tenth_of_probes_fails_on_the_absolute_rate_though_its_relative_change_is_small() -> None:
    v = judge_stratum("k", "web/D2s", frame(10, 1), frame(60, 2, health_fail=0.12), OK, RolloutPolicy())
    rate = next(s for s in v.signals if s.signal == "health_rate")
    relative = next(s for s in v.signals if s.signal == "health_ok")
    assert abs(relative.relative_change) < RolloutPolicy().judge_tolerance  # the relative test cannot see it
    assert rate.phase is Phase.FAILED and v.phase is Phase.FAILED
    assert "against an expected 1.0%" in rate.message


def test_a_failed_stratum_counts_all_its_shadows_as_failing_and_a_clean_one_none() -> None:
    bad = judge_stratum("k", "web/D2s", frame(10, 1), frame(30, 2, errors=12.0), OK, RolloutPolicy())
    good = judge_stratum("k", "web/D2s", frame(10, 1), frame(30, 2), OK, RolloutPolicy())
    assert (bad.shadows_failed, bad.shadows_changed) == (2, 2)
    assert (good.shadows_failed, good.shadows_changed) == (0, 2)


def _own_rate_one_by_one(b: Baseline, cpu_now: float) -> float:
    """The rule as it was written per VM, before the columns."""
    scale = 1.0
    if b.cpu and not np.isnan(cpu_now):
        scale = min(MAX_LOAD_SCALE, max(1.0, cpu_now / b.cpu))
    return max(b.errors or 0.0, MIN_ERROR_RATE) * scale


_RATE = st.one_of(st.none(), st.just(0.0), st.floats(0.0, 500.0))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_RATE, st.one_of(st.none(), st.just(0.0), st.floats(-5.0, 100.0)),
                          st.one_of(st.just(np.nan), st.floats(0.0, 100.0))), max_size=20))
def test_own_error_rates_as_columns_are_the_per_vm_rule_to_the_bit(
        rows: list[tuple[float | None, float | None, float]]) -> None:
    by_vm = {f"v{i}": Baseline(e, c) for i, (e, c, _) in enumerate(rows)}
    cpu_now = np.array([n for _, _, n in rows], dtype=np.float64)
    got = own_error_rates(Baselines.aligned(list(by_vm), by_vm), cpu_now)
    expected = np.array([_own_rate_one_by_one(by_vm[f"v{i}"], float(cpu_now[i])) for i in range(len(rows))])
    assert np.array_equal(got, expected.reshape(len(rows)))


def test_baselines_that_do_not_match_the_frame_are_refused() -> None:
    f = fleet_frame(3, 15, 1)
    with pytest.raises(ValueError, match="baselines for"):
        failing_vms(f, Baselines(np.zeros(2), np.zeros(2)), [], RolloutPolicy())
