from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from shared.domain.health import failing_vms
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
    assert v.score is not None and v.score <= 0.1


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


def test_failing_vms_names_each_reason() -> None:
    f = frame(5, 3)
    f.signals["health_ok"][0, :] = [1, 0, 0, 0, 1]
    f.signals["error_count"][1, :] = [20, 22, 25, 30, 21]
    applies = [ApplyResult("s1", ApplyStatus.OK, 0, 60), ApplyResult("s3", ApplyStatus.TIMEOUT, None, 900)]
    out = failing_vms(f, {"s1": 1.0, "s2": 1.0}, applies, RolloutPolicy())
    assert out["s1"] == "health probe failed 3 of the last 5 min (>= 3)"
    assert out["s2"].startswith("error-log rate >= 20/min for 5 min > 5 x pre-change 1.0/min")
    assert out["s3"] == "apply timeout (exit None) after 900s"


def test_missing_points_are_not_health_failures() -> None:
    f = frame(5, 4)
    f.signals["health_ok"][0, :] = [np.nan, np.nan, np.nan, 1, 1]
    assert failing_vms(f, {}, [], RolloutPolicy()) == {}
