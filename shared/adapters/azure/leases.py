"""Scale-set leases in Table storage: one row per held scale set, taken with a conditional insert.

Table storage makes an insert of an existing row fail, so two function instances can never both take the same
scale set; a multi-set acquire that meets a holder undoes the rows it inserted, so it is all-or-nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient

from ...domain.errors import Conflict, NotFound
from ...ports import LeaseConflict, LeaseResult, Leases
from .errors import azure_errors
from .store import escape_key, unescape_key

PARTITION = "lease"


class TableLeases(Leases):
    def __init__(self, table: TableClient) -> None:
        self.table = table
        self._created = False

    @classmethod
    def from_connection_string(cls, connection_string: str, table_name: str = "leases") -> TableLeases:
        return cls(TableServiceClient.from_connection_string(connection_string).get_table_client(table_name))

    def _ensure(self) -> None:
        if self._created:
            return
        with azure_errors("leases_create_table", self.table.table_name), contextlib.suppress(ResourceExistsError):
            self.table.create_table()
        self._created = True

    def acquire(self, resources: Sequence[str], holder: str, *, now: datetime) -> LeaseResult:
        self._ensure()
        taken: list[str] = []
        for key in sorted({r.lower() for r in resources}):
            try:
                with azure_errors("lease_acquire", key):
                    self.table.create_entity({"PartitionKey": PARTITION, "RowKey": escape_key(key),
                                              "Holder": holder, "Since": now.isoformat()})
                taken.append(key)
                continue
            except Conflict:  # the row exists: someone holds it (perhaps this very holder)
                with azure_errors("lease_read", key):
                    row = self.table.get_entity(PARTITION, escape_key(key))
            if row["Holder"] == holder:
                continue  # already ours: acquiring again is a no-op
            for k in taken:  # all or nothing
                with azure_errors("lease_undo", k):
                    self.table.delete_entity(PARTITION, escape_key(k))
            return LeaseResult(False, [LeaseConflict(key, str(row["Holder"]), str(row["Since"]))])
        return LeaseResult(True)

    def holders(self, resources: Sequence[str]) -> dict[str, LeaseConflict]:
        self._ensure()
        out: dict[str, LeaseConflict] = {}
        for key in {r.lower() for r in resources}:
            try:
                with azure_errors("lease_read", key):
                    row = self.table.get_entity(PARTITION, escape_key(key))
            except NotFound:
                continue
            out[key] = LeaseConflict(key, str(row["Holder"]), str(row["Since"]))
        return out

    def release(self, holder: str, resources: Sequence[str] | None = None) -> int:
        self._ensure()
        wanted = None if resources is None else {r.lower() for r in resources}
        with azure_errors("lease_list", holder):
            rows = list(self.table.query_entities("PartitionKey eq @pk and Holder eq @h",
                                                  parameters={"pk": PARTITION, "h": holder}))
        released = 0
        for row in rows:
            key = unescape_key(str(row["RowKey"]))
            if wanted is not None and key not in wanted:
                continue
            with azure_errors("lease_release", key):
                self.table.delete_entity(PARTITION, str(row["RowKey"]), etag=row.metadata["etag"],
                                         match_condition=MatchConditions.IfNotModified)
            released += 1
        return released
