"""Activity bindings: one Durable activity per handler in shared.orchestration.activities."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import azure.durable_functions as df

from shared.bootstrap import Services, services
from shared.orchestration import activities, capacity, cleanup

bp = df.Blueprint()

Handler = Callable[[Services, dict[str, Any]], dict[str, Any]]

ACTIVITIES: dict[str, Handler] = {
    name: getattr(activities, name)
    for name in (
        "start_rollout", "create_shadows", "drive_shadow_load", "apply_to_shadows", "analyse_shadows", "decide",
        "teardown_shadows", "prepare", "snapshot_wave", "apply_wave", "check_production", "reserve_capacity",
        "restore_vms", "verify_recovered", "release_capacity", "halt", "finish", "claim_targets", "resolve_gate",
        "abort_rollout",
    )
}
ACTIVITIES["release_leases"] = cleanup.release_leases
ACTIVITIES["settle_capacity"] = capacity.settle_capacity_after_wave


def _bind(name: str, handler: Handler) -> Callable[[Any], dict[str, Any]]:
    def activity(payload: Any) -> dict[str, Any]:
        data = json.loads(payload) if isinstance(payload, str) else payload
        return handler(services(), data)

    activity.__name__ = name
    activity.__qualname__ = name
    return activity


for _name, _handler in ACTIVITIES.items():
    bp.activity_trigger(input_name="payload", activity=_name)(_bind(_name, _handler))
