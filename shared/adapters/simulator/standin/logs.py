"""Log Analytics: the project's named queries (recognised by their ``// query:`` line; no KQL is interpreted)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from .base import (
    StandInBase,
    _HttpError,
    _iso,
    _Response,
)

QUERY_NAME = re.compile(r"^//\s*query:\s*([a-z_]+)", re.MULTILINE)
QUERY_IDS = re.compile(r"dynamic\((\[.*?\])\)", re.DOTALL)


class LogsQuery(StandInBase):
    """``POST /v1/workspaces/{id}/query``: apply results (the Activity log), error counts and health probes."""

    def _logs_query(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        text = body.get("query", "") if isinstance(body, dict) else ""
        timespan = body.get("timespan", "") if isinstance(body, dict) else ""
        name = QUERY_NAME.search(text)
        ids = QUERY_IDS.search(text)
        if name is None or ids is None or "/" not in timespan:
            raise _HttpError(400, "BadArgumentError", "The request had some invalid properties: the stand-in answers "
                             "the project's named queries with an absolute timespan")
        vm_ids = json.loads(ids.group(1))
        a, b = self._window(*timespan.split("/"))
        if name.group(1) == "apply_results":
            log = [(v, self.apply_log.get(v.lower())) for v in vm_ids]
            rows_ = [[v, _iso(t), status] for v, rec in log if rec is not None
                     for t, status in [rec] if a <= t < b and t <= self.now]
            return _Response(200, {"tables": [{"name": "PrimaryResult", "columns": [
                {"name": "_ResourceId", "type": "string"}, {"name": "TimeGenerated", "type": "datetime"},
                {"name": "Value", "type": "string"}], "rows": rows_}]})
        signal = {"error_counts": "error_count", "health_probes": "health_ok"}.get(name.group(1))
        if signal is None:
            raise _HttpError(400, "SemanticError", f"unknown query {name.group(1)}")
        arr = self._signals(vm_ids, a, b)[signal] if vm_ids else np.zeros((0, 0))
        stamps = [_iso(a + k) for k in range(b - a)]
        rows = [[vm, ts, x] for vm, values in zip(vm_ids, arr.tolist(), strict=True)
                for ts, x in zip(stamps, values, strict=True) if not math.isnan(x)]
        return _Response(200, {"tables": [{"name": "PrimaryResult", "columns": [
            {"name": "_ResourceId", "type": "string"}, {"name": "TimeGenerated", "type": "datetime"},
            {"name": "Value", "type": "real"}], "rows": rows}]})
