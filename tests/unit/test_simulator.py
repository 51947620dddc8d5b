from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from shared.adapters.simulator.adapters import SimTelemetry, to_datetime
from shared.adapters.simulator.scenario import parse_scenario
from shared.adapters.simulator.world import FleetWorld
from shared.domain.model import ApplyStatus, ChangeSpec

CHANGE = ChangeSpec("c1")


def world(effects: list[dict[str, object]] | None = None, capacity: int = 6, **extra: object) -> FleetWorld:
    data = {"name": "t", "seed": 1, "fleet": {"scale_sets": [{"name": "web", "capacity": capacity}]},
            "change": {"id": "c1", "truth": {"effects": effects or []}}, **extra}
    return FleetWorld(parse_scenario(data))


def test_telemetry_is_the_same_whoever_asks_and_in_whatever_order() -> None:
    w = world()
    idx = np.arange(6)
    a = w.signals(idx, 0, 30)
    b = w.signals(idx[::-1], 10, 30)
    for k in a:
        np.testing.assert_array_equal(a[k][::-1][:, 10:], b[k])


def test_crash_on_apply_fails_the_apply_and_takes_the_service_down() -> None:
    w = world([{"mode": "crash_on_apply"}])
    w.clock.now = 10
    res = w.apply(np.array([0]), CHANGE, timeout_minutes=15)
    assert res[0].status is ApplyStatus.FAILED and res[0].exit_code == 1
    after = w.signals(np.array([0]), int(w.clock.now) + 1, int(w.clock.now) + 20)
    assert np.all(after["health_ok"] == 0.0)


def test_memory_leak_drains_available_memory_until_health_fails() -> None:
    w = world([{"mode": "memory_leak", "severity": 0.8}])
    before = w.signals(np.array([0]), 0, 10)["mem_available_pct"].mean()
    w.apply(np.array([0]), CHANGE, timeout_minutes=15)
    later = w.signals(np.array([0]), 20, 30)["mem_available_pct"].mean()
    assert later < before - 20
    assert np.all(w.signals(np.array([0]), 60, 70)["health_ok"] == 0.0)


def test_error_burst_raises_errors_while_health_stays_up() -> None:
    w = world([{"mode": "error_burst", "severity": 0.5}])
    before = w.signals(np.array([0]), 0, 30)["error_count"].mean()
    w.apply(np.array([0]), CHANGE, timeout_minutes=15)
    after = w.signals(np.array([0]), 10, 40)
    assert after["error_count"].mean() > 5 * before
    assert after["health_ok"].mean() > 0.95


def test_latent_crash_shows_nothing_until_its_onset() -> None:
    w = world([{"mode": "latent_crash", "onset_minutes": 60}])
    w.apply(np.array([0]), CHANGE, timeout_minutes=15)
    assert np.all(w.signals(np.array([0]), 5, 55)["health_ok"] == 1.0)
    assert np.all(w.signals(np.array([0]), 70, 80)["health_ok"] == 0.0)


def test_when_conditions_and_probability_pick_the_affected_vms() -> None:
    w = world([{"mode": "latent_crash", "probability": 0.5}], capacity=200)
    w.apply(np.arange(200), CHANGE, timeout_minutes=15)
    affected = np.isfinite(w.t["imp_at"][:200]).sum()
    assert 70 < affected < 130


def test_telemetry_hides_the_future_and_the_minute_in_progress() -> None:
    w = world()
    w.clock.now = 20.5
    f = SimTelemetry(w).signals([w.ids[0]], to_datetime(10), to_datetime(40))
    assert not np.isnan(f.signals["cpu_pct"][0, :10]).any()
    assert np.isnan(f.signals["cpu_pct"][0, 10:]).all()


def test_shadow_runs_idle_until_driven_and_load_above_shows_only_when_loaded() -> None:
    effects = [{"mode": "error_burst", "severity": 0.9, "when": {"load_above": 0.5}}]
    w = world(effects)
    s_idle = w.index_of(w.create_shadow(0, "Standard_D4s_v5", "1", "regular", "t").shadow_id)
    s_busy = w.index_of(w.create_shadow(1, "Standard_D4s_v5", "2", "regular", "t").shadow_id)
    w.drive(np.array([s_busy]), np.array([0.8]))
    w.clock.now += 2  # the load has run for a while before the change
    assert w.signals(np.array([s_idle]), int(w.clock.now) + 1, int(w.clock.now) + 5)["cpu_pct"].mean() < 15
    w.apply(np.array([s_idle, s_busy]), CHANGE, timeout_minutes=15)
    assert not np.isfinite(w.t["imp_at"][s_idle]) and np.isfinite(w.t["imp_at"][s_busy])


def test_spot_refused_falls_back_to_regular_price_or_fails_per_policy() -> None:
    from shared.domain.errors import CapacityUnavailable

    w = world(faults={"spot_unavailable_skus": ["Standard_D4s_v5"]})
    info = w.create_shadow(0, "Standard_D4s_v5", "1", "regular", "t")
    assert not info.spot and "Spot refused" in info.message
    with pytest.raises(CapacityUnavailable, match="Spot capacity refused for Standard_D4s_v5"):
        w.create_shadow(0, "Standard_D4s_v5", "1", "skip", "t")


def test_restore_needs_a_snapshot_taken_before_the_change() -> None:
    from shared.domain.errors import Conflict

    w = world([{"mode": "latent_crash", "onset_minutes": 5}])
    w.apply(np.array([0]), CHANGE, timeout_minutes=15)
    late = w.snapshot(np.array([0]), "late")[0]
    with pytest.raises(Conflict, match="taken after the change"):
        w.restore(np.array([0]), [late.snapshot_id])


def test_outcome_counts_impaired_minutes_until_restore() -> None:
    w = world([{"mode": "latent_crash", "onset_minutes": 30}], capacity=2)
    snap = w.snapshot(np.array([0]), "pre")[0]
    w.apply(np.array([0, 1]), CHANGE, timeout_minutes=15)
    crash_at = float(w.t["imp_at"][0])
    w.clock.now = crash_at + 20
    w.restore(np.array([0]), [snap.snapshot_id])
    restored_at = float(w.t["restore_done"][0])
    o = w.outcome(strategy="t", believed={w.ids[0]: "old", w.ids[1]: "new"}, halted=False,
                  finished_at=w.clock.now, decisions=[])
    assert o["vms"]["rolled_back"] == 1 and o["vms"]["failed_unrecovered"] == 1
    assert o["outcome"] == "failed"
    vm1 = 1440 - (float(w.t["imp_at"][1]) - float(w.t["apply_at"][1]))
    assert o["impaired_vm_minutes"] == pytest.approx(restored_at - crash_at + vm1, abs=0.1)
    assert o["production_vms_impaired"] == 2


def test_a_wrong_record_of_the_configuration_is_unknown_state() -> None:
    w = world(capacity=2)
    w.apply(np.array([0]), CHANGE, timeout_minutes=15)
    o = w.outcome(strategy="t", believed={w.ids[0]: "old"}, halted=False, finished_at=w.clock.now, decisions=[])
    assert o["vms"]["unknown_state"] == 1 and o["vms"]["never_touched"] == 1
    assert o["outcome"] == "failed"


def test_clock_conversions_round_trip() -> None:
    from shared.adapters.simulator.adapters import SIM_EPOCH, to_minute

    assert to_minute(to_datetime(90.5)) == pytest.approx(90.5)
    assert to_datetime(0) == SIM_EPOCH and to_datetime(60) - SIM_EPOCH == timedelta(hours=1)
