"""An in-process RolloutStore: the simulator's default, and the model of the Table-storage adapter.

It keeps a version per row and refuses a write naming a stale one exactly as Table storage answers 412
(:class:`~shared.domain.errors.StaleWrite`), so local runs and tests meet the conflicts Azure would show.
A lock makes each write atomic, as an entity-group transaction is.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Mapping
from typing import Any

from ..domain.errors import StaleWrite
from ..ports import RolloutStore, RowWrite, StoredRow


def _text(value: Mapping[str, Any]) -> str:
    """The row as JSON text: what the store keeps is exactly what a Table entity could hold (and no caller's
    later change reaches it); readers decode it when they need the value (:class:`StoredRow`)."""
    return json.dumps(dict(value))


class InMemoryRolloutStore(RolloutStore):
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], dict[str, StoredRow]] = {}
        self._versions = itertools.count(1)
        self._lock = threading.Lock()
        self._generations: dict[tuple[str, str], int] = {}

    def rows(self, rollout_id: str, kind: str) -> dict[str, StoredRow]:
        # Rows hold the JSON text written; a row's value is decoded once, on first use, and shared by its
        # readers, who treat it as read-only (the repository validates it into models).
        with self._lock:
            return dict(self._rows.get((rollout_id, kind), {}))

    def rows_since(self, rollout_id: str, kind: str, generation: int | None
                   ) -> tuple[int | None, dict[str, StoredRow] | None]:
        with self._lock:
            now = self._generations.get((rollout_id, kind), 0)
            if generation is not None and generation == now:
                return now, None
            return now, dict(self._rows.get((rollout_id, kind), {}))

    def write(self, rollout_id: str, kind: str, rows: Mapping[str, RowWrite]) -> dict[str, str]:
        texts = {k: _text(w.value) for k, w in rows.items()}
        with self._lock:
            table = self._rows.setdefault((rollout_id, kind), {})
            for key, w in rows.items():
                have = table.get(key)
                if (have.etag if have is not None else None) != w.etag:
                    raise StaleWrite(f"{rollout_id}/{kind}/{key} changed since it was read "
                                     f"(version {w.etag}, now {have.etag if have else 'absent'})",
                                     operation="store_write", resource=f"{rollout_id}|{kind}", status=412)
            out: dict[str, str] = {}
            for key, text in texts.items():
                version = next(self._versions)
                table[key] = StoredRow(text=text, etag=f'W/"{version}"')
                out[key] = table[key].etag
                self._generations[(rollout_id, kind)] = version
            return out

    def rollout_ids(self) -> list[str]:
        with self._lock:
            return sorted({rid for rid, kind in self._rows if kind == "record"})
