"""Each mode's signature and each fault, as the scenario contract describes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.adapters.simulator.scenario import load_scenario, parse_scenario
from shared.adapters.simulator.world import FleetWorld
from shared.domain.errors import Throttled
from shared.domain.model import ApplyStatus, ChangeSpec, ShadowState

CHANGE = ChangeSpec("c1")
CORPUS = Path(__file__).parents[2] / "bench" / "scenarios"


def world(effects: list[dict[str, object]] | None = None, capacity: int = 20, mean: float = 0.45,
          **extra: object) -> FleetWorld:
    data = {"name": "t", "seed": 4, "fleet": {"scale_sets": [{"name": "web", "capacity": capacity,
                                                               "load": {"mean": mean, "noise": 0.02}}]},
            "change": {"id": "c1", "truth": {"effects": effects or []}}, **extra}
    return FleetWorld(parse_scenario(data))


def window(w: FleetWorld, rows: list[int], start: float, minutes: int) -> dict[str, np.ndarray]:
    a = int(start) + 1
    return w.signals(np.array(rows), a, a + minutes)


def test_apply_timeout_hangs_until_the_timeout_and_degrades_health() -> None:
    w = world([{"mode": "apply_timeout", "severity": 0.6}])
    res = w.apply(np.arange(3), CHANGE, timeout_minutes=15)
    assert {r.status for r in res} == {ApplyStatus.TIMEOUT}
    assert all(r.duration_s == pytest.approx(900.0) for r in res)
    after = window(w, [0, 1, 2], w.clock.now, 30)
    assert np.nanmean(after["health_ok"]) < 0.5


def test_cpu_regression_raises_cpu_and_impairs_only_when_it_saturates() -> None:
    hot = world([{"mode": "cpu_regression", "severity": 0.9}])
    before = np.nanmean(window(hot, [0], 0, 20)["cpu_pct"])
    hot.apply(np.array([0]), CHANGE, timeout_minutes=15)
    after = np.nanmean(window(hot, [0], hot.clock.now, 20)["cpu_pct"])
    assert after > before + 40
    assert np.isfinite(hot.t["imp_at"][0])
    mild = world([{"mode": "cpu_regression", "severity": 0.1}], mean=0.2)
    mild.apply(np.array([0]), CHANGE, timeout_minutes=15)
    assert not np.isfinite(mild.t["imp_at"][0])


def test_health_flap_fails_probes_at_a_rate_growing_with_severity() -> None:
    rates = []
    for sev in (0.1, 0.9):
        w = world([{"mode": "health_flap", "severity": sev}])
        w.apply(np.arange(20), CHANGE, timeout_minutes=15)
        rates.append(1 - np.nanmean(window(w, list(range(20)), w.clock.now, 60)["health_ok"]))
    assert 0.15 < rates[0] < 0.4 and 0.6 < rates[1] < 0.85


def test_network_degradation_cuts_throughput_and_raises_errors() -> None:
    w = world([{"mode": "network_degradation", "severity": 0.5}])
    before = window(w, list(range(20)), 0, 30)
    w.apply(np.arange(20), CHANGE, timeout_minutes=15)
    after = window(w, list(range(20)), w.clock.now, 30)
    assert np.nanmean(after["net_bytes"]) < 0.7 * np.nanmean(before["net_bytes"])
    assert np.nanmean(after["error_count"]) > 2 * np.nanmean(before["error_count"])


def test_telemetry_has_benign_spikes_and_gaps_on_a_good_fleet() -> None:
    w = world(capacity=200)
    s = w.signals(np.arange(200), 0, 240)
    assert 0.005 < np.isnan(s["cpu_pct"]).mean() < 0.02  # metric gaps
    assert 0.002 < np.isnan(s["health_ok"]).mean() < 0.01  # log gaps
    median = np.nanmedian(s["cpu_pct"])
    assert (s["cpu_pct"] > median + 20).sum() > 50  # spikes, with no change at all


def test_arm_throttling_delays_operations_by_retry_after_then_gives_up() -> None:
    calm = world()
    calm.snapshot(np.arange(10), "t")
    throttled = world(faults={"arm_throttle_rate": 0.5})
    throttled.snapshot(np.arange(10), "t")
    assert throttled.clock.now > calm.clock.now
    always = world(faults={"arm_throttle_rate": 1.0})
    with pytest.raises(Throttled, match="still failing after 10 attempts"):
        always.arm_delay("snapshot", "vm-1")


def test_fault_draws_depend_on_operation_resource_and_attempt_only() -> None:
    a = world(faults={"arm_transient_error_rate": 0.5})
    b = world(faults={"arm_transient_error_rate": 0.5})
    first = [a.arm_delay("apply", f"vm-{i}") for i in range(20)]
    assert first == [b.arm_delay("apply", f"vm-{i}") for i in range(20)]
    assert first != [a.arm_delay("apply", f"vm-{i}") for i in range(20)]  # a retry draws afresh


def test_spot_shadow_gets_an_eviction_notice_then_is_evicted() -> None:
    w = world(faults={"spot_evictions_per_hour": 30.0})
    row = w.index_of(w.create_shadow(0, "Standard_D4s_v5", "1", "regular", "t").shadow_id)
    evict_at = float(w.t["exists_to"][row])
    w.clock.now = evict_at - 0.2
    assert w.shadow_state(row) is ShadowState.EVICTING
    w.clock.now = evict_at + 0.1
    assert w.shadow_state(row) is ShadowState.EVICTED
    assert np.isnan(w.signals(np.array([row]), int(evict_at) + 1, int(evict_at) + 5)["cpu_pct"]).all()


def test_snapshot_failures_leave_vms_without_a_snapshot() -> None:
    w = world(faults={"snapshot_failure_rate": 1.0})
    assert w.snapshot(np.arange(5), "t") == []
    some = world(capacity=100, faults={"snapshot_failure_rate": 0.5})  # 3 attempts each: ~1 in 8 lost
    assert 75 < len(some.snapshot(np.arange(100), "t")) < 98


def test_a_failed_first_restore_is_retried_and_takes_longer() -> None:
    w = world([{"mode": "latent_crash", "onset_minutes": 5}], faults={"restore_failure_rate": 1.0})
    snap = w.snapshot(np.array([0]), "t")[0]
    w.apply(np.array([0]), CHANGE, timeout_minutes=15)
    w.clock.now += 10
    _, ok, attempts, _ = w.restore(np.array([0]), [snap.snapshot_id])[0]
    assert ok and attempts == 2
    assert w.t["restore_done"][0] - w.t["restore_start"][0] > 5.0


def naive_fixed_threshold_alarm(signals: dict[str, np.ndarray]) -> bool:
    """A guard with fixed thresholds: any VM above 90% CPU or 3x the fleet's median error rate in a minute."""
    errors = signals["error_count"]
    return bool(np.nanmax(signals["cpu_pct"]) > 90.0 or np.nanmax(errors) > 3 * max(np.nanmedian(errors), 1.0))


@pytest.mark.parametrize("name", ["good-noisy-diurnal", "good-hot-fleet", "good-standard"])
def test_a_naive_fixed_threshold_guard_raises_false_alarms_on_good_corpus_changes(name: str) -> None:
    from shared.domain.health import Baseline, failing_vms
    from shared.domain.model import SignalFrame
    from shared.domain.policy import RolloutPolicy

    sc = load_scenario(CORPUS / f"{name}.yaml")
    assert sc.is_good_change
    w = FleetWorld(sc)
    rows = np.arange(w.n_production)
    before = w.signals(rows, 0, 15)
    w.apply(rows, CHANGE, timeout_minutes=15)
    after = w.signals(rows, 20, 50)
    assert naive_fixed_threshold_alarm(after)
    frame = SignalFrame([w.ids[i] for i in rows], __import__("datetime").datetime(2026, 1, 1), after)
    with np.errstate(all="ignore"):
        base = {w.ids[i]: Baseline(float(np.nanmean(before["error_count"][i])), float(np.nanmean(before["cpu_pct"][i])))
                for i in rows}
    assert failing_vms(frame, base, [], RolloutPolicy()) == {}


def test_transient_back_off_restarts_with_each_new_operation() -> None:
    """The attempt count keys the draws across calls, but each call's back-off starts from 0.8 s again."""
    w = world(faults={"arm_transient_error_rate": 0.3})
    delays = [w.arm_delay("snapshot", "vm-1") for _ in range(40)]
    assert max(delays) < (0.8 * (2**10 - 1)) / 60  # never more than one call's worth of 10 back-offs
    assert sum(delays) / len(delays) < 0.5  # minutes: typically a second or two per call


def test_spot_refused_can_fall_back_to_the_nearest_size_of_the_same_family() -> None:
    from shared.adapters.simulator.adapters import SimShadowPool
    from shared.domain.model import ShadowPlan
    from shared.domain.skus import family_alternatives

    assert family_alternatives("Standard_D4s_v5")[:2] == ["Standard_D2s_v5", "Standard_D8s_v5"]
    assert family_alternatives("Standard_B2s") == [] and family_alternatives("Standard_Q9_v9") == []
    w = world(faults={"spot_unavailable_skus": ["Standard_D4s_v5"]})
    pool = SimShadowPool(w)
    plans = [ShadowPlan(w.ids[i], "k", "Standard_D4s_v5", "1") for i in range(3)]
    [fam, *_] = pool.create(plans[:1], rollout_id="r", spot_fallback="family")
    assert fam.spot and fam.sku == "Standard_D2s_v5" and "of the same family" in fam.message
    capped = pool.create(plans[1:], rollout_id="r", spot_fallback="regular", max_regular=1)
    assert [s.state for s in capped] == [ShadowState.RUNNING, ShadowState.FAILED] and not capped[0].spot
