"""Compute's operation-status resource: what a client polls after a long-running operation was accepted."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ..world import SUBSCRIPTION
from .base import (
    StandInBase,
    _HttpError,
    _iso,
    _Operation,
    _Response,
)

DUE = 1e-3 / 60.0
"""An operation asked about within a millisecond of its end has ended (a durable timer's clock is in
microseconds, the world's in minutes)."""


class OperationStatus(StandInBase):
    """``GET .../locations/{region}/operations/{id}``: InProgress with Retry-After, then the terminal state."""

    def _get_operation(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        op = self._ops.get(match["op"])
        if op is None:
            raise _HttpError(404, "NotFound", f"operation {match['op']} not found")
        if self.now < op.done_at - DUE and not self._in_process and self._realtime is None:
            # over a socket, not standing alone: the client waits Retry-After in another thread, unseen here
            self.world.clock.advance_to(op.done_at)
        if self.now < op.done_at - DUE:  # as ARM: a poll never moves the operation along
            retry = self._retry_after(op)
            if query.get("monitor"):
                return _Response(202, None, {**retry, "Location": f"{self.url}{urlsplit(self._self_url(op)).path}"
                                                                  "?monitor=true&api-version=2024-11-01"})
            return _Response(200, {"name": op.id, "status": "InProgress", "startTime": _iso(op.start)}, retry)
        self.world.clock.advance_to(op.done_at)  # asked within DUE of its end: it ends now
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
