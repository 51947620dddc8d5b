"""The anytime-valid bake: its error rates by simulation, and the stratum state the rollout store keeps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.bench.sequential_oc import RESULTS, Effect, false_alarms, power, run, signals
from shared.domain.model import SignalFrame
from shared.domain.policy import RolloutPolicy
from shared.domain.sequential import (
    SequentialDesign,
    SeqVerdict,
    StratumSequence,
    _row_means,
    _row_medians,
    _row_sums_of_squares,
    bake_status,
    baseline_deviations,
    oriented_changes,
    start_sequence,
    update_sequence,
)

T0 = datetime(2026, 11, 29, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------- error rates
@pytest.mark.parametrize("alpha", [0.01, 0.1])
def test_false_alarm_rate_over_2000_good_strata_stays_within_nominal_plus_one_point(alpha: float) -> None:
    design = SequentialDesign(alpha=alpha)
    fa = false_alarms(design, 2000, seed=11, horizon_minutes=90.0)
    assert fa["strata"] >= 1000
    assert fa["ci95"][1] <= alpha + 0.01, fa


def test_one_shadow_strata_keep_their_false_alarm_rate_within_nominal_and_far_below_unconfirmed_crossings() -> None:
    # benign bursts on a stratum's only shadow crossed the harm level about 1% of the time (a corpus false skip);
    # confirming the crossing over the next transient_minutes removes nearly all of them
    confirmed = false_alarms(SequentialDesign(), 2000, seed=11, rows=1)
    unconfirmed = false_alarms(SequentialDesign(transient_minutes=0.0), 2000, seed=11, rows=1)
    assert confirmed["ci95"][1] <= SequentialDesign().alpha + 0.01, confirmed
    assert confirmed["false_alarms"] * 4 <= unconfirmed["false_alarms"], (confirmed, unconfirmed)


def test_a_persistent_effect_on_one_shadow_is_still_found_only_later() -> None:
    effect = Effect("cpu +24", cpu_points=24.0)
    slow = power(SequentialDesign(), effect, 300, seed=2, rows=1)
    fast = power(SequentialDesign(transient_minutes=0.0), effect, 300, seed=2, rows=1)
    assert slow["detected_by_max_bake"] >= 0.95, slow
    assert fast["median_detection_minute"] < slow["median_detection_minute"] <= (
        fast["median_detection_minute"] + SequentialDesign().transient_minutes + 2 * SequentialDesign().check_minutes)


@pytest.mark.parametrize("rows", [2, 4])
def test_a_harmful_signal_at_the_tolerable_effect_is_called_harmless_at_most_beta_of_the_time(rows: int) -> None:
    design = SequentialDesign()
    for effect in (Effect("probe fails 10%", flap_probability=0.10), Effect("errors x2", error_factor=2.0)):
        p = power(design, effect, 1000, seed=5, rows=rows)
        assert p["no_harm_first"] <= design.beta, p


def test_the_committed_operating_characteristics_are_what_the_simulation_gives() -> None:
    committed = json.loads(RESULTS.read_text())
    design = SequentialDesign.model_validate(committed["design"])
    assert design == SequentialDesign()  # the figures are the default design's
    good = committed["good"][0]
    assert false_alarms(design, good["strata"], seed=0, rows=good["rows"]) == good
    assert good["strata"] >= 1000 and good["ci95"][1] <= design.alpha + 0.01
    one = next(g for g in committed["good"] if g["rows"] == 1)
    assert false_alarms(design, one["strata"], seed=0, rows=1) == one
    assert one["false_alarms"] < committed["one_shadow_unconfirmed"]["false_alarms"]


def test_good_strata_end_their_bake_early_with_no_harm() -> None:
    design = SequentialDesign()
    fa = false_alarms(design, 1000, seed=3, horizon_minutes=design.max_bake_minutes)
    assert fa["median_stop_minute"] < design.max_bake_minutes
    assert fa["no_harm_by_max_bake"] >= 0.7


def test_a_rollout_of_25_two_shadow_strata_rarely_shows_every_stratum_harmless_but_its_pooled_shadows_do() -> None:
    design = SequentialDesign()
    per_stratum = false_alarms(design, 500, seed=8, horizon_minutes=design.max_bake_minutes)
    assert per_stratum["all_of_25_no_harm_by_max_bake"] <= 0.2  # why bake_status also takes the pooled sequence
    pooled = false_alarms(design, 200, seed=8, rows=50, horizon_minutes=design.max_bake_minutes)
    assert pooled["median_stop_minute"] == design.min_bake_minutes and pooled["no_harm_by_max_bake"] >= 0.99
    assert per_stratum["any_of_25_suspect_at_min_bake"] <= 0.05  # suspicion rarely holds a good bake back


@pytest.mark.parametrize("effect", [Effect("cpu +24", cpu_points=24.0), Effect("errors x13", error_factor=13.0),
                                    Effect("network -40%", net_drop=0.4),
                                    Effect("probe fails 22%", flap_probability=0.22)])
def test_strong_effects_are_shown_harmful_within_the_bake(effect: Effect) -> None:
    p = power(SequentialDesign(), effect, 300, seed=2)
    assert p["detected_by_max_bake"] >= 0.95, p


def test_an_effect_with_a_late_onset_is_caught_soon_after_it_begins_thanks_to_the_restarts() -> None:
    late = Effect("cpu +24 from 20", cpu_points=24.0, onset=20.0)
    p = power(SequentialDesign(), late, 300, seed=4)
    assert p["detected_by_horizon"] >= 0.95 and 20.0 < p["median_detection_minute"] <= 26.0
    from_zero_only = power(SequentialDesign(harm_restarts=(0.0,)), late, 300, seed=4)
    assert from_zero_only["median_detection_minute"] > p["median_detection_minute"] + 6.0  # diluted by minutes 0-20


# ---------------------------------------------------------------------------------------------- the stratum state
def frame(values: dict[str, np.ndarray], start: datetime) -> SignalFrame:
    rows = next(iter(values.values())).shape[0]
    return SignalFrame([f"vm{i}" for i in range(rows)], start, {k: np.asarray(v, dtype=float)
                                                               for k, v in values.items()})


def run_state(raw: dict[str, np.ndarray], baseline_minutes: int, design: SequentialDesign,
              ) -> tuple[StratumSequence, list[SeqVerdict]]:
    base = frame({k: v[:, :baseline_minutes] for k, v in raw.items()}, T0)
    state = start_sequence("s", baseline_deviations(base), design)
    verdicts = []
    post = next(iter(raw.values())).shape[1] - baseline_minutes
    step = int(design.check_minutes)
    for end in range(step, post + 1, step):
        cols = slice(baseline_minutes + end - step, baseline_minutes + end)
        window = frame({k: v[:, cols] for k, v in raw.items()}, T0 + timedelta(minutes=end - step))
        state, decision = update_sequence(state, oriented_changes(base, window), float(end), design)
        verdicts.append(decision.verdict)
    return state, verdicts


@pytest.mark.parametrize(("effect", "rows"), [(None, 2), (Effect("cpu +24", cpu_points=24.0), 2),
                                             (Effect("flap", flap_probability=0.3), 2),
                                             (Effect("cpu +24", cpu_points=24.0), 1), (None, 1)])
def test_the_stratum_state_decides_as_the_vectorised_simulation_does(effect: Effect | None, rows: int) -> None:
    design = SequentialDesign()
    strata, horizon = 6, 40
    sim = run(design, strata, effect=effect, horizon_minutes=horizon, seed=9, rows=rows)
    raw = signals(np.random.default_rng(9), strata, rows, 10 + horizon, 10, effect)
    decided = sim.harm_minute if effect else sim.safe_minute
    assert np.isfinite(decided).sum() >= strata // 2  # the comparison covers decisions, not only 'continue'
    for i in range(strata):
        state, _ = run_state({k: v[i] for k, v in raw.items()}, 10, design)
        harm = [s.harm_minute for s in state.signals if s.harm_minute is not None]
        assert (min(harm) if harm else np.inf) == sim.harm_minute[i]
        safe = [s.safe_minute for s in state.signals]
        expected = sim.safe_minute[i]
        assert (max(safe) if all(m is not None for m in safe) else np.inf) == expected  # type: ignore[type-var]


def test_a_good_stratum_goes_from_continue_to_no_harm_not_before_the_minimum_bake() -> None:
    design = SequentialDesign(min_bake_minutes=10)
    raw = signals(np.random.default_rng(1), 1, 4, 40, 10, None)
    state, verdicts = run_state({k: v[0] for k, v in raw.items()}, 10, design)
    assert verdicts[0] is SeqVerdict.CONTINUE
    first = verdicts.index(SeqVerdict.NO_HARM)
    assert (first + 1) * design.check_minutes >= design.min_bake_minutes
    assert state.verdict is SeqVerdict.NO_HARM


def test_a_crashed_probe_signal_shows_harm_with_the_numbers_in_the_reason() -> None:
    design = SequentialDesign()
    base = frame({"health_ok": np.ones((2, 10)), "cpu_pct": 40 + np.random.default_rng(0).normal(0, 2, (2, 10))}, T0)
    state = start_sequence("web|D4|ubuntu|1", baseline_deviations(base), design)
    window = frame({"health_ok": np.zeros((2, 2)), "cpu_pct": np.full((2, 2), 40.0)}, T0 + timedelta(minutes=10))
    state, decision = update_sequence(state, oriented_changes(base, window), 2.0, design)
    assert decision.verdict is SeqVerdict.HARM
    assert "health_ok mean change +100.0% over 4 increments" in decision.reason
    assert decision.signals["health_ok"]["n"] == 4.0


def one_shadow_looks(cpu_after: list[float], design: SequentialDesign, shadows: int = 1,
                     ) -> tuple[StratumSequence, list[str]]:
    """A stratum of ``shadows`` shadows at a steady 45% CPU (sd 1.5) whose every shadow shows ``cpu_after``."""
    rng = np.random.default_rng(4)
    base = frame({"cpu_pct": 45 + rng.normal(0, 1.5, (shadows, 10))}, T0)
    state = start_sequence("web|D2as|ubuntu-20.04|2", baseline_deviations(base), design)
    reasons = []
    step = int(design.check_minutes)
    for end in range(step, len(cpu_after) + 1, step):
        values = np.asarray(cpu_after[end - step:end]) + rng.normal(0, 1.5, (shadows, step))
        window = frame({"cpu_pct": values}, T0 + timedelta(minutes=10 + end - step))
        state, decision = update_sequence(state, oriented_changes(base, window), float(end), design)
        reasons.append(decision.reason)
    return state, reasons


BURST = [80.0] * 4 + [45.0] * 32
"""A 4-minute benign CPU burst (cron, GC) as the change lands: what made a good change skip a one-VM stratum
(good-heterogeneous seed 16)."""


PERSISTENT = [80.0] * 36


def test_a_benign_burst_on_a_stratums_only_shadow_is_dismissed_as_a_transient_not_harm() -> None:
    design = SequentialDesign()
    state, reasons = one_shadow_looks(BURST, design)
    assert state.verdict is not SeqVerdict.HARM
    assert any("harm on one shadow since minute" in r and "or is a transient" in r for r in reasons)
    cpu = next(s for s in state.signals if s.signal == "cpu_pct")
    assert cpu.harm_minute is None and cpu.confirm_minutes == design.transient_minutes
    unconfirmed, _ = one_shadow_looks(BURST, SequentialDesign(transient_minutes=0.0))
    assert unconfirmed.verdict is SeqVerdict.HARM  # what the burst did without the confirmation


def test_harm_on_one_shadow_that_persists_is_shown_once_the_transient_window_has_passed() -> None:
    design = SequentialDesign()
    state, reasons = one_shadow_looks(PERSISTENT, design)
    cpu = next(s for s in state.signals if s.signal == "cpu_pct")
    assert state.verdict is SeqVerdict.HARM and cpu.pending_minute is not None and cpu.harm_minute is not None
    assert cpu.harm_minute - cpu.pending_minute >= design.transient_minutes
    assert cpu.confirm_above * 2 > cpu.confirm_n >= design.transient_minutes
    assert "on one shadow and persisting" in reasons[-1]


def test_two_shadows_showing_the_same_shift_are_harm_at_the_crossing_without_waiting() -> None:
    design = SequentialDesign()
    two, _ = one_shadow_looks(PERSISTENT, design, shadows=2)
    one, _ = one_shadow_looks(PERSISTENT, design)
    cpu2, cpu1 = (next(s for s in st.signals if s.signal == "cpu_pct") for st in (two, one))
    assert cpu2.confirm_minutes == 0.0 and cpu2.pending_minute is None and cpu2.harm_minute is not None
    assert cpu1.harm_minute is not None and cpu1.harm_minute >= cpu2.harm_minute + design.transient_minutes


def test_too_few_increments_decide_nothing() -> None:
    design = SequentialDesign(min_increments=4)
    base = frame({"health_ok": np.ones((1, 10))}, T0)
    state = start_sequence("s", baseline_deviations(base), design)
    window = frame({"health_ok": np.zeros((1, 2))}, T0)
    state, decision = update_sequence(state, oriented_changes(base, window), 2.0, design)
    assert decision.verdict is SeqVerdict.CONTINUE  # two failed probes of one shadow: not yet evidence


def test_an_undecided_stratum_is_inconclusive_at_the_maximum_bake() -> None:
    design = SequentialDesign(max_bake_minutes=4, min_bake_minutes=4)
    base = frame({"cpu_pct": 40 + np.random.default_rng(0).normal(0, 2, (2, 10))}, T0)
    state = start_sequence("s", baseline_deviations(base), design)
    for minute in (2.0, 4.0):
        window = frame({"cpu_pct": 40 + np.random.default_rng(int(minute)).normal(0, 2, (2, 2))}, T0)
        state, decision = update_sequence(state, oriented_changes(base, window), minute, design)
    assert decision.verdict is SeqVerdict.INCONCLUSIVE  # signals without data never show no harm
    assert "inconclusive at the maximum bake 4 min" in decision.reason


def test_a_replayed_look_adds_nothing_and_the_state_round_trips_through_json() -> None:
    design = SequentialDesign()
    base = frame({"cpu_pct": 40 + np.random.default_rng(0).normal(0, 2, (2, 10))}, T0)
    state = start_sequence("s", baseline_deviations(base), design)
    window = frame({"cpu_pct": np.full((2, 2), 41.0)}, T0)
    once, _ = update_sequence(state, oriented_changes(base, window), 2.0, design)
    twice, _ = update_sequence(once, oriented_changes(base, window), 2.0, design)
    assert twice == once and once.signals != state.signals
    assert StratumSequence.model_validate_json(once.model_dump_json()) == once


def test_the_twins_shift_is_subtracted_but_never_from_probe_failures() -> None:
    base = frame({"cpu_pct": np.full((2, 10), 40.0), "health_ok": np.ones((2, 10))}, T0)
    window = frame({"cpu_pct": np.full((2, 2), 50.0), "health_ok": np.zeros((2, 2))}, T0)
    twins = (frame({"cpu_pct": np.full((1, 10), 40.0), "health_ok": np.ones((1, 10))}, T0),
             frame({"cpu_pct": np.full((1, 2), 50.0), "health_ok": np.zeros((1, 2))}, T0))
    x = oriented_changes(base, window, twins)
    assert np.allclose(x["cpu_pct"], 0.0)  # the environment moved the twins as much
    assert np.allclose(x["health_ok"], 1.0)  # a failed probe is the shadow's own


def test_one_twin_whose_pre_change_minutes_hold_a_benign_burst_does_not_make_a_good_change_look_harmful() -> None:
    # the hx-good-many-small-1 seed 228 false halt: a 5-minute CPU burst over 5 of one twin's 9 pre-change minutes
    # put its median centre inside the burst, so its every later minute looked like a 40% fall the shadows did not
    # share; the environment is the median over every running twin, which that one twin cannot move
    quiet = np.full((4, 9), 42.0)
    burst = np.array([[42.0, 43.0, 41.0, 71.0, 84.0, 75.0, 85.0, 74.0, 46.0]])
    twins_base = frame({"cpu_pct": np.vstack([burst, quiet])}, T0)
    twins_window = frame({"cpu_pct": np.full((5, 10), 42.0)}, T0)
    base = frame({"cpu_pct": np.full((2, 9), 50.0)}, T0)
    window = frame({"cpu_pct": np.full((2, 10), 50.0)}, T0)
    x = oriented_changes(base, window, (twins_base, twins_window))
    assert np.allclose(x["cpu_pct"], 0.0)
    alone = oriented_changes(base, window, (frame({"cpu_pct": burst}, T0), frame({"cpu_pct": np.full((1, 10), 42.0)},
                                                                                   T0)))
    assert float(np.mean(alone["cpu_pct"])) > 0.3  # what one twin alone made of it


def test_a_median_over_twins_prices_its_centre_error_above_a_mean_over_them() -> None:
    design = SequentialDesign()
    rng = np.random.default_rng(3)
    base = baseline_deviations(frame({"cpu_pct": 50.0 + rng.normal(0, 2.0, (2, 10))}, T0))
    twins = baseline_deviations(frame({"cpu_pct": 50.0 + rng.normal(0, 2.0, (3, 10))}, T0))
    bare = start_sequence("s", base, design)
    with_twins = start_sequence("s", base, design, twins)
    cpu = {s.signal: s for s in bare.signals}["cpu_pct"]
    cpu_t = {s.signal: s for s in with_twins.signals}["cpu_pct"]
    assert cpu_t.margin > cpu.margin and cpu_t.tolerable < cpu.tolerable


def test_the_design_follows_the_policy_bake() -> None:
    d = SequentialDesign.from_policy(RolloutPolicy(bake_minutes=45, bake_check_minutes=5))
    assert (d.max_bake_minutes, d.min_bake_minutes, d.check_minutes) == (45.0, 10.0, 5.0)
    with pytest.raises(ValueError, match="min_bake_minutes"):
        SequentialDesign(min_bake_minutes=40, max_bake_minutes=30)
    with pytest.raises(ValueError, match="harm_restarts must start at 0"):
        SequentialDesign(harm_restarts=(10.0, 20.0))


def test_the_bake_ends_when_every_stratum_is_decided_or_at_the_maximum() -> None:
    design = SequentialDesign(max_bake_minutes=30)
    base = StratumSequence(stratum_key="x", signals=())
    states = {"a": base.model_copy(update={"verdict": SeqVerdict.NO_HARM}),
              "b": base.model_copy(update={"verdict": SeqVerdict.HARM}),
              "c": base.model_copy(update={"verdict": SeqVerdict.CONTINUE})}
    waiting = bake_status(states, 12.0, design)
    assert not waiting.done and waiting.pending == ("c",) and "1 undecided (0 suspect) of 3 strata" in waiting.reason
    states["c"] = base.model_copy(update={"verdict": SeqVerdict.NO_HARM})
    done = bake_status(states, 14.0, design)
    assert done.done and done.harmed == ("b",) and done.no_harm == ("a", "c")
    states["c"] = base.model_copy(update={"verdict": SeqVerdict.INCONCLUSIVE})
    assert bake_status(states, 30.0, design).done and "maximum 30 min" in bake_status(states, 30.0, design).reason


def test_the_bake_ends_early_when_the_pooled_shadows_show_no_harm_and_no_undecided_stratum_is_suspect() -> None:
    design = SequentialDesign(min_bake_minutes=10, max_bake_minutes=30)
    base = start_sequence("x", {"cpu_pct": np.zeros((2, 10))}, design)
    pooled = base.model_copy(update={"verdict": SeqVerdict.NO_HARM})
    states = {"a": base.model_copy(update={"verdict": SeqVerdict.NO_HARM}), "b": base}
    assert not bake_status(states, 8.0, design, fleet=pooled).done  # not before the minimum bake
    early = bake_status(states, 12.0, design, fleet=pooled)
    assert early.done and early.pending == ("b",) and "pooled shadows show no harm" in early.reason
    hot = base.signals[0].model_copy(update={"log_e_harm": 3.0})  # e = 20 >= SUSPICION_E
    states["b"] = base.model_copy(update={"signals": (hot, *base.signals[1:])})
    waiting = bake_status(states, 12.0, design, fleet=pooled)
    assert not waiting.done and "(1 suspect)" in waiting.reason


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=0, max_size=12), min_size=0,
                max_size=6).filter(lambda rows: len({len(r) for r in rows}) <= 1))
def test_row_medians_are_each_rows_numpy_median_of_its_kept_values(rows: list[list[float | None]]) -> None:
    values = np.array([[np.nan if x is None else x for x in r] for r in rows], dtype=np.float64).reshape(
        len(rows), len(rows[0]) if rows else 0)
    expected = np.array([np.median(r[~np.isnan(r)]) if (~np.isnan(r)).any() else np.nan for r in values])
    assert np.array_equal(_row_medians(values), expected.reshape(len(rows)), equal_nan=True)


def _rows(data: list[list[float | None]]) -> np.ndarray:
    return np.array([[np.nan if x is None else x for x in r] for r in data], dtype=np.float64).reshape(
        len(data), len(data[0]) if data else 0)


_ROWS = st.tuples(st.integers(0, 300), st.booleans()).flatmap(lambda spec: st.lists(st.lists(
    st.floats(-1e6, 1e6) if spec[1] else st.one_of(st.none(), st.floats(-1e6, 1e6)),
    min_size=spec[0], max_size=spec[0]), min_size=0, max_size=5))
"""Rows of one width (up to past numpy's 128-value pairwise blocks), with gaps or without."""


@settings(max_examples=200, deadline=None)
@given(_ROWS)
def test_row_means_are_each_rows_numpy_mean_of_its_kept_values_to_the_bit(data: list[list[float | None]]) -> None:
    values = _rows(data)
    expected = np.array([r[~np.isnan(r)].mean() if (~np.isnan(r)).any() else np.nan for r in values])
    assert np.array_equal(_row_means(values), expected.reshape(len(data)), equal_nan=True)


@settings(max_examples=200, deadline=None)
@given(_ROWS)
def test_row_sums_of_squares_are_each_rows_own_to_the_bit(data: list[list[float | None]]) -> None:
    values = _rows(data)
    counts = np.sum(~np.isnan(values), axis=1)
    expected = [float(np.sum((k - k.mean()) ** 2)) if k.size >= 2 else np.nan
                for k in (r[~np.isnan(r)] for r in values)]
    assert np.array_equal(_row_sums_of_squares(values, counts), np.array(expected).reshape(len(data)),
                          equal_nan=True)
