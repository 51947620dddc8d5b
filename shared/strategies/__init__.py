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


STRATEGIES: dict[str, Strategy] = {
    "shadow-predictive": shadow_predictive,
    vmss_rolling.NAME: vmss_rolling.run,
    canary_mannwhitney.NAME: canary_mannwhitney.run,
    linear_alarm.NAME: linear_alarm.run,
    threshold_only.NAME: threshold_only.run,
    no_guard.NAME: no_guard.run,
    oracle.NAME: oracle.run,
}
"""Every strategy by its contract name, the project's first and the floor (``oracle``) last."""
