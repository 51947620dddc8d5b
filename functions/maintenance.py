"""Timer bindings: periodic retraining of the failure model from the rollout store's history, and the janitor."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

from shared.bootstrap import services

bp = df.Blueprint()  # a Durable blueprint, like the others, so one app type indexes all


@bp.timer_trigger(schedule="%SHADOW_ROLLOUT_RETRAIN_SCHEDULE%", arg_name="timer", run_on_startup=False)
def retrain_failure_model(timer: func.TimerRequest) -> None:
    from shared.adapters.onnx_model import MODEL_DIR
    from shared.learning.retrain import retrain

    model_dir = Path(os.environ.get("SHADOW_ROLLOUT_MODEL_DIR") or MODEL_DIR)
    result = retrain([services().store], model_dir)
    logging.info("failure model retraining: promoted=%s: %s", result["promoted"], result["reason"])


@bp.timer_trigger(schedule="%SHADOW_ROLLOUT_JANITOR_SCHEDULE%", arg_name="timer", run_on_startup=False)
def janitor(timer: func.TimerRequest) -> None:
    """Return what ended rollouts left behind: shadows (by tag), leases, borrowed instances."""
    from shared.orchestration.cleanup import janitor as sweep

    report = sweep(services())
    logging.info("janitor: %d shadows, %d leases, %d extra instances returned; %s", len(report.shadows),
                 report.leases, sum(report.extra_instances.values()), "; ".join(report.reasons) or "nothing found")
