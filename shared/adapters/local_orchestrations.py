"""Orchestrations over the local Durable runner: what the triggers use in tests and local runs.

The runner is synchronous and runs on a virtual clock; ``drive`` (when given) is called after each start or
raised event so that a local run can advance on its own, while tests leave it out and call ``runner.run``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..ports import InstanceStatus, Orchestrations, StartResult
from ..runtime.local_durable import LocalDurableRunner


class LocalOrchestrations(Orchestrations):
    def __init__(self, runner: LocalDurableRunner, drive: Callable[[], None] | None = None) -> None:
        self.runner = runner
        self._drive = drive

    def _after(self) -> None:
        if self._drive is not None:
            self._drive()

    async def start(self, name: str, instance_id: str, input_: Any) -> StartResult:
        existing = await self.status(instance_id)
        if existing is not None:
            return StartResult(instance_id, started=False, existing=existing)
        self.runner.start_new(name, instance_id, input_)
        self._after()
        return StartResult(instance_id, started=True)

    async def status(self, instance_id: str) -> InstanceStatus | None:
        s = self.runner.status(instance_id)
        return InstanceStatus(**s) if s is not None else None

    async def raise_event(self, instance_id: str, event_name: str, data: Any) -> None:
        self.runner.raise_event(instance_id, event_name, data)
        self._after()

    async def terminate(self, instance_id: str, reason: str) -> None:
        self.runner.terminate(instance_id, reason)

    async def list(self, *, name: str | None = None, created_from: datetime | None = None,
                   limit: int = 50) -> list[InstanceStatus]:
        return [InstanceStatus(**s) for s in self.runner.list_instances(name=name, created_from=created_from,
                                                                         limit=limit)]
