"""Strategies benchmarked on the same simulator: the project's own and its peers (scenarios contract §3).

Each maps a scenario and a seed to the contract's outcome object, accounted from the ground truth by the same
code (:func:`shared.adapters.simulator.accounting.account`). The peers are plain loops over the simulator's
ports (:mod:`shared.strategies.base`); ``shadow-predictive`` runs the real Durable orchestrations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..adapters.simulator.scenario import Scenario
from . import canary_mannwhitney, linear_alarm, no_guard, oracle, threshold_only, vmss_rolling
from .base import WATCH_SUFFIX, watched

Strategy = Callable[[Scenario, int], dict[str, Any]]


def shadow_predictive(scenario: Scenario, seed: int) -> dict[str, Any]:
    """The project's strategy, through the function app's orchestrations and the local Durable runner."""
    from ..simulation import simulate

    return simulate(scenario, seed=seed).outcome


def shadow_predictive_chaos(scenario: Scenario, seed: int, rate: float) -> dict[str, Any]:
    """The project's strategy with activities redelivered and the worker crashing, seeded by the run's seed."""
    from ..runtime.chaos import Chaos
    from ..simulation import simulate

    return simulate(scenario, seed=seed, chaos=Chaos(seed=seed, rate=rate)).outcome


def shadow_predictive_no_watch(scenario: Scenario, seed: int) -> dict[str, Any]:
    """The project's strategy without its 24-hour production watch: what the shadows and the waves do alone."""
    from ..simulation import simulate

    sc = scenario.model_copy(update={"policy": {**scenario.policy, "production_watch_minutes": 0}})
    outcome = simulate(sc, seed=seed).outcome
    outcome["strategy"] = NO_WATCH
    return outcome


NO_WATCH = "shadow-predictive-no-watch"
_PEERS = (vmss_rolling, canary_mannwhitney, linear_alarm, threshold_only, no_guard)
STRATEGIES: dict[str, Strategy] = {
    "shadow-predictive": shadow_predictive,
    NO_WATCH: shadow_predictive_no_watch,
    **{p.NAME: p.run for p in _PEERS},
    **{p.NAME + WATCH_SUFFIX: watched(p.run) for p in _PEERS},
    oracle.NAME: oracle.run,
}
"""Every strategy by its contract name, the project's first and the floor (``oracle``) last. Each peer also runs as
``<peer>+watch``, with the project's production watch after its last step, and the project's strategy also runs
without it, so that the benchmark shows what the shadows add on their own."""
