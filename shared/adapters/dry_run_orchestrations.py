"""Orchestrations that start nothing: ``shadow-rollout intake-check`` records what would have started, so a
second delivery of the same input finds it (a duplicate) exactly as the Durable client would."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..ports import InstanceStatus, Orchestrations, StartResult


class DryRunOrchestrations(Orchestrations):
    def __init__(self) -> None:
        self.would_start: dict[str, InstanceStatus] = {}
        self.inputs: dict[str, Any] = {}

    async def start(self, name: str, instance_id: str, input_: Any) -> StartResult:
        existing = self.would_start.get(instance_id)
        if existing is not None:
            return StartResult(instance_id, started=False, existing=existing)
        self.would_start[instance_id] = InstanceStatus(instance_id, name, "Pending")
        self.inputs[instance_id] = input_
        return StartResult(instance_id, started=True)

    async def status(self, instance_id: str) -> InstanceStatus | None:
        return self.would_start.get(instance_id)

    async def raise_event(self, instance_id: str, event_name: str, data: Any) -> None:
        return None  # nothing runs in a dry run

    async def terminate(self, instance_id: str, reason: str) -> None:
        return None

    async def list(self, *, name: str | None = None, created_from: datetime | None = None,
                   limit: int = 50) -> list[InstanceStatus]:
        return [s for s in self.would_start.values() if name is None or s.name == name][:limit]
