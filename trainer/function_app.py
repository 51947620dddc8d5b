"""The trainer Function App: retrains the failure model on a schedule, outside the rollout app.

A second Flex Consumption app (not a Container Apps job): the same `azd up` deploys it with the same tooling,
timer semantics, identity model and Application Insights as the rollout app, with no container registry or
image build; a run trains on thousands of rows in minutes, well inside the host's time limit. Its package
carries the training dependencies (scikit-learn, skl2onnx, onnx), which the rollout app no longer needs.

It reads the rollout store (Table data reader) and writes only the model registry's container (Blob data
contributor); the rollout app picks up a promoted version by itself (docs/operations.md, "Retraining").
On demand: `shadow-rollout retrain --registry URL`, or run this timer through the host's admin endpoint.
The package is staged by trainer/stage.sh (azd's prepackage hook): it copies shared/ and model/ in.
"""

import logging
from datetime import UTC, datetime

import azure.functions as func

app = func.FunctionApp()


@app.timer_trigger(schedule="%SHADOW_ROLLOUT_RETRAIN_SCHEDULE%", arg_name="timer", run_on_startup=False)
def retrain_failure_model(timer: func.TimerRequest) -> None:
    from shared.learning.trainer import run_from_environment

    run = run_from_environment(datetime.now(UTC))
    logging.info("failure model retraining: trained=%s promoted=%s version=%s: %s", run.trained, run.promoted,
                 run.version, run.reason)
