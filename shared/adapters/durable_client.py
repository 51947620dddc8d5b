"""Orchestrations over the Durable Functions client binding (``DurableOrchestrationClient``).

``start_new`` with an id already in use *replaces* a finished instance (and, depending on the extension's
``overridableExistingInstanceStates``, may replace a running one), so exactly-once is enforced here: the
status is read first, and a start that loses a race to a concurrent delivery is resolved by reading it again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import azure.durable_functions as df

from ..ports import InstanceStatus, Orchestrations, StartResult


def _status(s: Any) -> InstanceStatus | None:
    if s is None or not s or s.instance_id is None:  # a status with no created time is "not found"
        return None
    rs = s.runtime_status
    return InstanceStatus(instance_id=str(s.instance_id), name=str(s.name or ""),
                          runtime_status=str(rs.value if rs is not None else "Pending"),
                          created_at=s.created_time, last_updated_at=s.last_updated_time,
                          custom_status=s.custom_status, output=s.output)


class DurableClientOrchestrations(Orchestrations):
    def __init__(self, client: df.DurableOrchestrationClient) -> None:
        self.client = client

    async def start(self, name: str, instance_id: str, input_: Any) -> StartResult:
        existing = await self.status(instance_id)
        if existing is not None:
            return StartResult(instance_id, started=False, existing=existing)
        try:
            await self.client.start_new(name, instance_id, input_)
        except Exception:
            again = await self.status(instance_id)  # a concurrent delivery started it first
            if again is not None:
                return StartResult(instance_id, started=False, existing=again)
            raise
        return StartResult(instance_id, started=True)

    async def status(self, instance_id: str) -> InstanceStatus | None:
        try:
            s = await self.client.get_status(instance_id)
        except (TypeError, AttributeError, ValueError):  # 404: the SDK parses an empty body
            return None
        return _status(s)

    async def raise_event(self, instance_id: str, event_name: str, data: Any) -> None:
        await self.client.raise_event(instance_id, event_name, data)

    async def terminate(self, instance_id: str, reason: str) -> None:
        await self.client.terminate(instance_id, reason)

    async def list(self, *, name: str | None = None, created_from: datetime | None = None,
                   limit: int = 50) -> list[InstanceStatus]:
        found = await self.client.get_status_by(created_time_from=created_from)
        out = [x for x in (_status(s) for s in found) if x is not None and (name is None or x.name == name)]
        out.sort(key=lambda x: x.created_at.isoformat() if x.created_at else "", reverse=True)
        return out[:limit]
