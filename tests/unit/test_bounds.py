from __future__ import annotations

import pytest

from shared.domain.bounds import failure_rate_bound, shadows_needed, surprise_p_value


def test_zero_of_n_gives_the_rule_of_three_upper_bound() -> None:
    b = failure_rate_bound(0, 100, 0.95)
    assert b.lower == 0.0
    assert b.upper == pytest.approx(1 - 0.05 ** (1 / 100))
    assert b.upper == pytest.approx(3 / 100, rel=0.02)


def test_one_of_two_has_a_lower_bound_just_above_two_percent() -> None:
    b = failure_rate_bound(1, 2, 0.95)
    assert b.lower == pytest.approx(1 - 0.95 ** 0.5)  # exact: P(X>=1 | p) = 0.05
    assert b.upper == pytest.approx(0.95 ** 0.5)


def test_all_failing_has_an_upper_bound_of_one_and_no_trials_bound_nothing() -> None:
    assert failure_rate_bound(3, 3, 0.95).upper == 1.0
    assert failure_rate_bound(3, 3, 0.95).lower == pytest.approx(0.05 ** (1 / 3))
    none = failure_rate_bound(0, 0, 0.95)
    assert (none.lower, none.upper) == (0.0, 1.0)


def test_bounds_tighten_with_more_trials_at_the_same_rate() -> None:
    small, large = failure_rate_bound(1, 10, 0.95), failure_rate_bound(10, 100, 0.95)
    assert small.lower < large.lower < 0.1 < large.upper < small.upper


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="failures <= trials"):
        failure_rate_bound(3, 2, 0.95)
    with pytest.raises(ValueError, match="confidence"):
        failure_rate_bound(0, 2, 1.0)


def test_shadows_needed_to_rule_out_a_rate() -> None:
    assert shadows_needed(0.02, 0.95) == 149
    assert failure_rate_bound(0, 149, 0.95).upper < 0.02 < failure_rate_bound(0, 148, 0.95).upper


def test_surprise_p_value_is_the_binomial_tail() -> None:
    assert surprise_p_value(0, 10, 0.01) == 1.0
    assert surprise_p_value(1, 10, 0.01) == pytest.approx(1 - 0.99 ** 10)
    assert surprise_p_value(1, 10, 0.0) == 0.0


@pytest.mark.parametrize("trials", [5, 15, 49, 163, 720])
@pytest.mark.parametrize("rate", [0.005, 0.01, 0.02])
def test_the_surprise_test_is_the_same_rule_as_the_lower_bound(trials: int, rate: float) -> None:
    for failures in range(min(trials, 20) + 1):
        surprising = surprise_p_value(failures, trials, rate) < 0.05
        assert surprising == (failure_rate_bound(failures, trials, 0.95).lower > rate), failures
