"""Timer bindings: the janitor. (Retraining is the trainer app's, trainer/.)"""

from __future__ import annotations

import logging

import azure.durable_functions as df
import azure.functions as func

from shared.bootstrap import services

bp = df.Blueprint()  # a Durable blueprint, like the others, so one app type indexes all


@bp.timer_trigger(schedule="%SHADOW_ROLLOUT_JANITOR_SCHEDULE%", arg_name="timer", run_on_startup=False)
def janitor(timer: func.TimerRequest) -> None:
    """Return what ended rollouts left behind: shadows (by tag), leases, borrowed instances."""
    from shared.orchestration.cleanup import janitor as sweep

    report = sweep(services())
    logging.info("janitor: %d shadows, %d leases, %d extra instances returned; %s", len(report.shadows),
                 report.leases, sum(report.extra_instances.values()), "; ".join(report.reasons) or "nothing found")
