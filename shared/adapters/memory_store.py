"""An in-process RolloutStore: the simulator's default, and the model of the Table-storage adapter."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..ports import RolloutStore


def _copy(value: Any) -> Any:
    """A JSON round trip: what the store keeps is exactly what a Table entity could hold."""
    return json.loads(json.dumps(value))


class InMemoryRolloutStore(RolloutStore):
    def __init__(self) -> None:
        self._rollouts: dict[str, dict[str, Any]] = {}
        self._items: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._decisions: dict[str, list[dict[str, Any]]] = {}

    def put_rollout(self, rollout_id: str, record: Mapping[str, Any]) -> None:
        current = self._rollouts.get(rollout_id, {})
        self._rollouts[rollout_id] = {**current, **_copy(dict(record))}

    def get_rollout(self, rollout_id: str) -> dict[str, Any] | None:
        rec = self._rollouts.get(rollout_id)
        return _copy(rec) if rec is not None else None

    def put_items(self, rollout_id: str, kind: str, items: Mapping[str, Mapping[str, Any]]) -> None:
        table = self._items.setdefault((rollout_id, kind), {})
        for key, value in items.items():
            table[key] = {**table.get(key, {}), **_copy(dict(value))}

    def get_items(self, rollout_id: str, kind: str) -> dict[str, dict[str, Any]]:
        # Items were copied in by put_items and are handed out as they are stored: the port's contract is
        # that callers treat them as read-only and write changes back with put_items.
        return dict(self._items.get((rollout_id, kind), {}))

    def add_decisions(self, rollout_id: str, decisions: Sequence[Mapping[str, Any]]) -> None:
        self._decisions.setdefault(rollout_id, []).extend(_copy([dict(d) for d in decisions]))

    def decisions(self, rollout_id: str) -> list[dict[str, Any]]:
        return _copy(self._decisions.get(rollout_id, []))  # type: ignore[no-any-return]

    def rollout_ids(self) -> list[str]:
        return sorted(self._rollouts)
