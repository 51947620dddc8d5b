"""Begin an ARM long-running operation without waiting for it, and poll it once later, from another process.

ARM answers a long-running PUT/POST/DELETE with 201/202 and ``Azure-AsyncOperation`` (or ``Location``) and
``Retry-After``; the client GETs that URL until the status is terminal ("Track asynchronous Azure operations",
learn.microsoft.com/azure/azure-resource-manager/management/async-operations). azure-core carries the state of such
a poll in a continuation token: ``LROPoller.continuation_token()`` and ``begin_x(..., continuation_token=token)``
(azure-core ``azure/core/polling/_poller.py``; since 1.38 the token of ``LROBasePolling`` is JSON, no pickle:
``azure/core/polling/base_polling.py``, ``get_continuation_token`` / ``from_continuation_token``). The generated
``begin_*`` methods of azure-mgmt-compute accept both ``polling=<PollingMethod>`` and ``continuation_token``
(``azure/mgmt/compute/operations/_operations.py``): with a token they skip the initial request and rebuild the
poller over the client's own pipeline (retries, pacing, authentication).

So an activity begins with :class:`Begun` (the poller makes no status request; the token is kept) and a later
activity polls with :class:`PollOnce` (exactly one status request, no sleep: the orchestrator's durable timer is
the wait, at the ``Retry-After`` kept here).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.core.polling import LROPoller
from azure.core.polling.base_polling import BadResponse, BadStatus
from azure.mgmt.core.polling.arm_polling import ARMPolling

from ...domain.operations import OperationState
from .errors import azure_errors

TERMINAL_FAILED = frozenset({"failed", "canceled", "cancelled"})


class Begun(ARMPolling):
    """Polling that never polls: the begin returns with the initial response and its continuation token."""

    def run(self) -> None:
        return None


class PollOnce(ARMPolling):
    """One status request per poller, and the final GET once terminal (what ``LROBasePolling._poll`` does after
    its loop); the answer's ``Retry-After`` is kept in :attr:`retry_after`, a failed operation's ARM error in
    :attr:`error` (an operation that failed is an answer, not an exception; a request that failed raises)."""

    retry_after: float = 0.0
    error: str = ""

    def run(self) -> None:
        try:
            if not self.finished():
                self.update_status()
            if not self.finished():
                self.retry_after = float(self._extract_delay())
                return
            if self.status().lower() in TERMINAL_FAILED:
                self.error = _arm_error(self._pipeline_response.http_response.text())
                return
            final = self._operation.get_final_get_url(self._pipeline_response)
            if final:
                self._pipeline_response = self.request_status(final)
        except (BadStatus, BadResponse) as err:  # as LROBasePolling.run: the SDK's own error, mapped once outside
            raise HttpResponseError(response=self._pipeline_response.http_response, message=str(err),
                                    error=err) from err


def _arm_error(body: str) -> str:
    """``code: message`` of an operation status resource's ``error`` (ARM's async operations doc)."""
    try:
        error = json.loads(body or "{}").get("error") or {}
    except ValueError:
        return body[:500]
    return f"{error.get('code', 'Failed')}: {error.get('message', '')}"[:500]


@dataclass(frozen=True)
class Polled:
    state: OperationState
    retry_after_seconds: float = 0.0
    result: Any = None
    error: str = ""


def begin(start: Callable[..., LROPoller[Any]], *args: Any, operation: str = "begin", resource: str = "",
          **kwargs: Any) -> str:
    """Send the operation's initial request; its continuation token (JSON text)."""
    with azure_errors(operation, resource):
        poller = start(*args, polling=Begun(), **kwargs)
        return str(poller.continuation_token())


def poll(start: Callable[..., LROPoller[Any]], token: str, *args: Any, operation: str = "poll",
         resource: str = "") -> Polled:
    """Ask once how the operation of ``token`` stands. ``start`` is the same ``begin_*`` method that began it
    (its positional arguments are not sent again: with a token the SDK skips the initial request). A request
    that failed (throttled past its retries, 5xx) raises the project's error, mapped once."""
    method = PollOnce()
    with azure_errors(operation, resource):
        poller = start(*args, polling=method, continuation_token=token)
        poller.wait()
        status = poller.status().lower()
        if status == "succeeded":
            return Polled(OperationState.SUCCEEDED, result=poller.result())
    if status in TERMINAL_FAILED:
        return Polled(OperationState.FAILED, error=method.error or f"operation {status}")
    return Polled(OperationState.RUNNING, retry_after_seconds=method.retry_after)
