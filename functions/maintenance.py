"""Timer bindings: periodic retraining of the failure model from the rollout store's history."""

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
