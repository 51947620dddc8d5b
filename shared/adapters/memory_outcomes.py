"""An in-process OutcomePublisher: keeps what was published, in order (the Azure one sends to a topic)."""

from __future__ import annotations

import json
from typing import Any

from ..ports import OutcomePublisher


class InMemoryOutcomePublisher(OutcomePublisher):
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._ids: set[str] = set()

    def publish(self, event: dict[str, Any]) -> None:
        """Keep a JSON copy; an event id seen before is dropped, as a duplicate-detecting topic would."""
        copy: dict[str, Any] = json.loads(json.dumps(event))
        event_id = str(copy.get("event_id", ""))
        if event_id and event_id in self._ids:
            return
        self._ids.add(event_id)
        self.events.append(copy)

    def of(self, rollout_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("rollout_id") == rollout_id]
