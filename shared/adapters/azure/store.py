"""The RolloutStore port over Azure Table storage (azure-data-tables).

One table. PartitionKey = ``<rollout id>|<kind>`` (``record``, ``decision``, ``vm``, ``shadow``, ``snapshot``,
``rollback``...), RowKey = the item's key (escaped: Table keys refuse ``/ \\ # ?``). Entity properties are flat,
so each item is JSON; a value longer than one string property allows is split over ``Data0..DataN``
properties, and an item larger than one entity allows is split over continuation rows ``<key>~1``, ``<key>~2``.
Every write is conditional (optimistic concurrency): a row read at an ETag is written back with that ETag and
``MatchConditions.IfNotModified`` (If-Match), a new row with ``create`` (insert, refused if it exists), so a
row changed meanwhile is refused with 412 (or 409 EntityAlreadyExists) and mapped to StaleWrite; the caller
re-reads and redoes its change (``RolloutStore.update``). The rows of one write go in one entity-group
transaction, all or nothing (at most 100 entities of one partition: ``ATOMIC_ROWS``). See
https://learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions and
https://learn.microsoft.com/rest/api/storageservices/update-entity2 (If-Match); the SDK's
``TableClient.submit_transaction`` takes ``("update", entity, {"etag", "match_condition"})`` operations.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential, TokenCredential
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from ...ports import RolloutStore, RowWrite, StoredRow
from .errors import azure_errors

MAX_STRING_CHARS = 32_000
"""A string property holds at most 64 KiB (32K UTF-16 characters); stay under it."""
MAX_ENTITY_CHARS = 480_000
"""An entity holds at most 1 MiB in all; JSON past this goes to continuation rows."""
MAX_BATCH = 100
"""Entity group transactions take at most 100 entities of one partition."""
_FORBIDDEN = {"/": "%2F", "\\": "%5C", "#": "%23", "?": "%3F", "%": "%25"}
RECORD, DECISION = "record", "decision"


def escape_key(key: str) -> str:
    """A RowKey/PartitionKey that Table storage accepts (reversible)."""
    return "".join(_FORBIDDEN.get(c, c) if c in _FORBIDDEN or ord(c) < 32 else c for c in key)


def unescape_key(key: str) -> str:
    out = key
    for c, e in sorted(_FORBIDDEN.items(), key=lambda x: x[0] == "%"):
        out = out.replace(e, c)
    return out


class TableRolloutStore(RolloutStore):
    """``create=True`` makes the table on first use (nothing reaches Azure before that)."""

    def __init__(self, table: TableClient, *, create: bool = False) -> None:
        self._table = table
        self._create = create

    @property
    def table(self) -> TableClient:
        if self._create:
            with azure_errors("create_table", self._table.table_name), contextlib.suppress(ResourceExistsError):
                self._table.create_table()
            self._create = False
        return self._table

    @classmethod
    def from_connection_string(cls, connection_string: str, table_name: str = "rollouts") -> TableRolloutStore:
        service = TableServiceClient.from_connection_string(connection_string)
        return cls(service.get_table_client(table_name), create=True)

    @classmethod
    def from_account(cls, endpoint: str, credential: TokenCredential | AzureNamedKeyCredential,
                     table_name: str = "rollouts") -> TableRolloutStore:
        return cls(TableServiceClient(endpoint, credential=credential).get_table_client(table_name), create=True)

    # ------------------------------------------------------------------ the port
    def rows(self, rollout_id: str, kind: str) -> dict[str, StoredRow]:
        return self._read(rollout_id, kind)

    def write(self, rollout_id: str, kind: str, rows: Mapping[str, RowWrite]) -> dict[str, str]:
        if not rows:
            return {}
        pk = escape_key(f"{rollout_id}|{kind}")
        batches: list[list[tuple[str, list[tuple[Any, ...]]]]] = [[]]
        size = 0
        for key, w in rows.items():
            entities = list(_entities(pk, escape_key(key), w.value))
            first: tuple[Any, ...] = (("create", entities[0]) if w.etag is None else
                                      ("update", entities[0], {"mode": UpdateMode.REPLACE, "etag": w.etag,
                                                               "match_condition": MatchConditions.IfNotModified}))
            ops = [first] + [("upsert", e, {"mode": UpdateMode.REPLACE}) for e in entities[1:]]
            if size + len(ops) > MAX_BATCH and batches[-1]:
                batches.append([])
                size = 0
            batches[-1].append((key, ops))
            size += len(ops)
        out: dict[str, str] = {}
        for batch in batches:
            with azure_errors("store_write", pk):
                results = self.table.submit_transaction([op for _, ops in batch for op in ops])
            i = 0
            for key, ops in batch:
                out[key] = str(results[i].get("etag", "")) if i < len(results) else ""
                i += len(ops)
        return out

    def rollout_ids(self) -> list[str]:
        """A scan for the record rows (one per rollout): the weekly retraining's list, not a hot path."""
        with azure_errors("store_list", "record"):
            rows = list(self.table.query_entities("RowKey eq @rk", parameters={"rk": escape_key("record")},
                                                  select=["PartitionKey"]))
        return sorted({unescape_key(str(r["PartitionKey"])).rsplit("|", 1)[0] for r in rows})

    # ------------------------------------------------------------------ entities
    def _read(self, rollout_id: str, kind: str) -> dict[str, StoredRow]:
        pk = escape_key(f"{rollout_id}|{kind}")
        with azure_errors("store_read", pk):
            rows = list(self.table.query_entities("PartitionKey eq @pk", parameters={"pk": pk}))
        parts: dict[str, dict[int, str]] = {}
        count: dict[str, int] = {}
        etags: dict[str, str] = {}
        for e in rows:
            base, _, seq = str(e["RowKey"]).partition("~")
            parts.setdefault(base, {})[int(seq or 0)] = "".join(
                str(e[f"Data{i}"]) for i in range(int(e.get("Parts", 1))))
            if not seq:
                count[base] = int(e.get("Rows", 1))
                etags[base] = str(e.metadata.get("etag", ""))
        out: dict[str, StoredRow] = {}
        for base, chunks in parts.items():
            n = count.get(base, 0)  # rows past the first row's count are left over from a longer version
            if n == 0 or any(i not in chunks for i in range(n)):
                continue
            out[unescape_key(base)] = StoredRow(text="".join(chunks[i] for i in range(n)), etag=etags[base])
        return out


def _entities(pk: str, rk: str, value: Any) -> Iterator[dict[str, Any]]:
    text = json.dumps(value, separators=(",", ":"))
    pieces = [text[a:a + MAX_ENTITY_CHARS] for a in range(0, len(text), MAX_ENTITY_CHARS)] or [""]
    for seq, piece in enumerate(pieces):
        strings = [piece[a:a + MAX_STRING_CHARS] for a in range(0, len(piece), MAX_STRING_CHARS)] or [""]
        entity: dict[str, Any] = {"PartitionKey": pk, "RowKey": rk if seq == 0 else f"{rk}~{seq}",
                                  "Parts": len(strings), "Rows": len(pieces)}
        entity.update({f"Data{i}": s for i, s in enumerate(strings)})
        yield entity

