"""Activity bindings: one Durable activity per handler in shared.orchestration.activities."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import azure.durable_functions as df

from shared.bootstrap import services
from shared.orchestration.activities import ACTIVITIES, Activity

bp = df.Blueprint()


def _bind(name: str, activity: Activity[Any, Any]) -> Callable[[Any], dict[str, Any]]:
    def bound(payload: Any) -> dict[str, Any]:
        return activity(services(), json.loads(payload) if isinstance(payload, str) else payload)

    bound.__name__ = name
    bound.__qualname__ = name
    return bound


for _name, _activity in ACTIVITIES.items():
    bp.activity_trigger(input_name="payload", activity=_name)(_bind(_name, _activity))
