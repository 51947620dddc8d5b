"""Compute's operation-status resource: what a client polls after a long-running operation was accepted."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from ..world import SUBSCRIPTION
from .base import (
    StandInBase,
    _HttpError,
    _iso,
    _Operation,
    _Response,
    _seconds,
)


class OperationStatus(StandInBase):
    """``GET .../locations/{region}/operations/{id}``: InProgress with Retry-After, then the terminal state."""

    def _get_operation(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        op = self._ops.get(match["op"])
        if op is None:
            raise _HttpError(404, "NotFound", f"operation {match['op']} not found")
        if self._realtime is not None and self.now < op.done_at:  # standing alone: the client really waits
            retry = {"Retry-After": str(max(1, math.ceil((op.done_at - self.now) * 60.0 / self._realtime[2])))}
            if query.get("monitor"):
                return _Response(202, None, {**retry, "Location": f"{self._self_url(op)}?monitor=true&"
                                                                  "api-version=2024-11-01"})
            return _Response(200, {"name": op.id, "status": "InProgress", "startTime": _iso(op.start)}, retry)
        if op.polls_left > 0 or self.now < op.done_at:
            op.polls_left -= 1
            wait = max(0.0, op.done_at - self.now)
            self.world.clock.advance_to(op.done_at)  # the client waits Retry-After before it asks again
            headers = {"Retry-After": _seconds(wait)}
            if query.get("monitor"):
                return _Response(202, None, {**headers, "Location": f"{self.url}{urlsplit(self._self_url(op)).path}"
                                                                    f"?monitor=true&api-version=2024-11-01"})
            return _Response(200, {"name": op.id, "status": "InProgress", "startTime": _iso(op.start)}, headers)
        if query.get("monitor"):
            if not op.ok:
                return _Response(200, {"error": op.error})
            return _Response(200, op.result) if op.result is not None else _Response(204)
        out: dict[str, Any] = {"name": op.id, "status": "Succeeded" if op.ok else "Failed",
                               "startTime": _iso(op.start), "endTime": _iso(op.done_at)}
        if not op.ok:
            out["error"] = op.error
        if op.result is not None:
            out["properties"] = {"output": op.result}
        return _Response(200, out)

    def _self_url(self, op: _Operation) -> str:
        return f"{self.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/" \
               f"{self.world.region}/operations/{op.id}"
