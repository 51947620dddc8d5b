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
    import importlib.util

    from shared.adapters.onnx_model import MODEL_DIR
    from shared.domain.errors import ConfigurationError

    if importlib.util.find_spec("sklearn") is None or importlib.util.find_spec("skl2onnx") is None:
        # off by default (enableRetraining): the package ships what the app imports, not the learning extra
        raise ConfigurationError("retraining needs the 'learning' extra (scikit-learn, skl2onnx), which the app "
                                 "package leaves out; retrain where model/ is writable (docs/operations.md)")
    from shared.learning.retrain import retrain

    model_dir = Path(os.environ.get("SHADOW_ROLLOUT_MODEL_DIR") or MODEL_DIR)
    result = retrain([services().store], model_dir)
    logging.info("failure model retraining: promoted=%s: %s", result["promoted"], result["reason"])
