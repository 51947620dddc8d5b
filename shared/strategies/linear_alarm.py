"""``linear-alarm``: AWS AppConfig's ``AppConfig.Linear20PercentEvery6Minutes`` with CloudWatch alarm rollback.

AppConfig's predefined strategy (AWS AppConfig user guide, "Using predefined deployment strategies"): "deploys the
configuration to 20% of all targets every six minutes for a 30 minute deployment. The system monitors for Amazon
CloudWatch alarms for 30 minutes. If no alarms are received in this time, the deployment is complete. If an
alarm is triggered during this time, AWS AppConfig rolls back the deployment." AppConfig watches its alarms for the
whole deployment and the final bake (``FinalBakeTime``: "the amount of time AWS AppConfig monitors for Amazon
CloudWatch alarms after the configuration has been deployed to 100% of its targets").

The alarms are the contract's (scenarios contract §3), evaluated every minute like 1-minute CloudWatch metrics:

* probe alarm: more than 5% of the changed VMs failed their health probe, in each of 2 consecutive minutes
  (``EvaluationPeriods`` 2, ``DatapointsToAlarm`` 2);
* error alarm: the changed VMs' error-log rate (``Average`` over them) stays above 3x the fleet's pre-change
  median for 5 consecutive minutes. The median is taken over every VM's mean rate in the 15 minutes before the
  deployment (a per-minute median of a count near 1 would be a poor reference).

Timing: a linear deployment "processes the deployment by increments of the growth factor evenly distributed over
the deployment"; AppConfig's own example timeline for a 10-hour deployment at 20% reads 0 hours 0%, 2 hours 20%,
4 hours 40%, ..., 10 hours 100% (AWS AppConfig user guide, "Working with deployment strategies",
https://docs.aws.amazon.com/appconfig/latest/userguide/appconfig-creating-deployment-strategy.html). So the first
increment goes out one interval after the start: here at minutes 6, 12, 18, 24 and 30, and the bake runs from 30 to
60. The earlier model of this peer deployed its first step at once (minutes 0, 6, ..., 24), six minutes ahead of
AppConfig; it stays available as :func:`run_at_once` (``LEGACY_NAME``) so that a benchmark can report the duration
ratio against both timings.

Modelling choices (bench/README.md): increments go out without waiting for the targets (they fetch the
configuration; a hung apply shows in the alarms, not in the schedule). AppConfig's rollback brings every target
back to the previous configuration; on VMs here that is a restore from a snapshot taken just before each VM's
change. Nothing watches production after the bake.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np

from ..adapters.simulator.scenario import Scenario
from .base import PeerRun, Process, ceil_share, row_means

NAME = "linear-alarm"
LEGACY_NAME = "linear-alarm-at-once"
"""The earlier timing (first step at minute 0), kept for before/after duration ratios; not a contract strategy."""
GROWTH_FACTOR_PERCENT = 20
DEPLOYMENT_DURATION_MINUTES = 30
FINAL_BAKE_TIME_MINUTES = 30
STEP_MINUTES = DEPLOYMENT_DURATION_MINUTES * GROWTH_FACTOR_PERCENT / 100  # 6
PROBE_ALARM_SHARE = 0.05
PROBE_ALARM_MINUTES = 2
ERROR_ALARM_FACTOR = 3.0
ERROR_ALARM_MINUTES = 5
PRE_CHANGE_MINUTES = 15


def run(scenario: Scenario, seed: int | None = None) -> dict[str, Any]:
    """AppConfig's timing: the first increment one interval after the start."""
    peer = PeerRun(scenario, seed, NAME)
    peer.run([deploy(peer)])
    return peer.outcome()


def run_at_once(scenario: Scenario, seed: int | None = None) -> dict[str, Any]:
    """The earlier timing, first increment at once: the same peer six minutes early (for before/after ratios)."""
    peer = PeerRun(scenario, seed, LEGACY_NAME)
    peer.run([deploy(peer, first_step_at_once=True)])
    return peer.outcome()


def deploy(peer: PeerRun, *, first_step_at_once: bool = False) -> Process:
    order = peer.shuffled([vm.vm_id for vm in peer.vms])
    steps = math.ceil(100 / GROWTH_FACTOR_PERCENT)
    size = ceil_share(GROWTH_FACTOR_PERCENT / 100, len(order))
    pre = peer.signals(order, PRE_CHANGE_MINUTES)
    rates = row_means(pre.signals["error_count"])
    median = float(np.nanmedian(rates)) if np.any(~np.isnan(rates)) else 1.0
    error_limit = ERROR_ALARM_FACTOR * median
    bake_end = float(DEPLOYMENT_DURATION_MINUTES + FINAL_BAKE_TIME_MINUTES)
    offset = 0.0 if first_step_at_once else STEP_MINUTES
    peer.decide("plan", f"AppConfig.Linear20PercentEvery6Minutes: {steps} steps of {size} VMs every "
                        f"{STEP_MINUTES:g} min from minute {offset:g}, bake until minute {bake_end:g}; alarms: "
                        f"probe failures > "
                        f"{PROBE_ALARM_SHARE:.0%} of changed VMs for {PROBE_ALARM_MINUTES} min, error rate > "
                        f"{ERROR_ALARM_FACTOR:g} x fleet median {median:.2f} = {error_limit:.2f}/min for "
                        f"{ERROR_ALARM_MINUTES} min")
    start = peer.now
    changed: list[str] = []
    alarm = ""
    bake_end += start
    for s in range(steps):
        alarm = yield from watch(peer, changed, error_limit, start + offset + s * STEP_MINUTES)
        if alarm:
            break
        batch = order[s * size:(s + 1) * size]
        if batch:
            peer.snapshot(batch)
            changed.extend(peer.apply(batch, wait=False))
            peer.decide("step", f"step {s + 1}/{steps}: {len(changed)}/{len(order)} VMs on the new configuration")
    else:
        alarm = yield from watch(peer, changed, error_limit, bake_end)
    if alarm:
        peer.halted = True
        peer.decide("halt_in_production", f"alarm: {alarm}; deployment rolled back")
        restored = peer.restore(changed)
        peer.decide("rollback_vm", f"{len(restored)}/{len(changed)} changed VMs rolled back to the previous "
                                   "configuration")
        return
    peer.decide("finished", f"deployed to {len(changed)} VMs; no alarm during the deployment and the bake")


def watch(peer: PeerRun, changed: list[str], error_limit: float, until: float) -> Generator[float, None, str]:
    """Evaluate the alarms every minute until ``until``; the first alarm's reason, else ''."""
    while peer.now < until:
        yield min(until, math.floor(peer.now) + 1.0)
        alarm = check_alarms(peer, changed, error_limit)
        if alarm:
            return alarm
    return ""


def check_alarms(peer: PeerRun, changed: list[str], error_limit: float) -> str:
    """Evaluate both alarms on the last complete minutes; the reason when one is in ALARM, else ''."""
    if not changed:
        return ""
    frame = peer.signals(changed, float(max(PROBE_ALARM_MINUTES, ERROR_ALARM_MINUTES)))
    health = frame.signals["health_ok"]
    if health.shape[1] < ERROR_ALARM_MINUTES:
        return ""
    with np.errstate(invalid="ignore"):
        failing = np.sum(health == 0.0, axis=0) / np.maximum(np.sum(~np.isnan(health), axis=0), 1)
    recent = failing[-PROBE_ALARM_MINUTES:]
    if np.all(recent > PROBE_ALARM_SHARE):
        return (f"health probe failing on > {PROBE_ALARM_SHARE:.0%} of {len(changed)} changed VMs for "
                f"{PROBE_ALARM_MINUTES} consecutive minutes (" + ", ".join(f"{x:.0%}" for x in recent) + ")")
    errors = frame.signals["error_count"][:, -ERROR_ALARM_MINUTES:]
    with np.errstate(invalid="ignore"):
        avg = np.nansum(errors, axis=0) / np.maximum(np.sum(~np.isnan(errors), axis=0), 1)
    if np.all(avg > error_limit):
        return (f"error-log rate of the changed VMs above {error_limit:.2f}/min for {ERROR_ALARM_MINUTES} "
                f"consecutive minutes (" + ", ".join(f"{x:.1f}" for x in avg) + ")")
    return ""
