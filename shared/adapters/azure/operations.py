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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.core.polling import LROPoller
from azure.core.polling.base_polling import BadResponse, BadStatus, OperationFailed
from azure.mgmt.core.polling.arm_polling import ARMPolling

from ...domain.operations import OperationState

TERMINAL_FAILED = frozenset({"failed", "canceled", "cancelled"})


class Begun(ARMPolling):
    """Polling that never polls: the begin returns with the initial response and its continuation token."""

    def run(self) -> None:
        return None


class PollOnce(ARMPolling):
    """One status request per poller, and the final GET once terminal (what ``LROBasePolling._poll`` does after
    its loop); the answer's ``Retry-After`` is kept in :attr:`retry_after`."""

    retry_after: float = 0.0

    def run(self) -> None:
        try:
            if not self.finished():
                self.update_status()
            if not self.finished():
                self.retry_after = float(self._extract_delay())
                return
            if self.status().lower() in TERMINAL_FAILED:
                raise OperationFailed("Operation failed or canceled")
            final = self._operation.get_final_get_url(self._pipeline_response)
            if final:
                self._pipeline_response = self.request_status(final)
        except BadStatus as err:
            self._status = "Failed"
            raise HttpResponseError(response=self._pipeline_response.http_response, error=err) from err
        except BadResponse as err:
            self._status = "Failed"
            raise HttpResponseError(response=self._pipeline_response.http_response, message=str(err),
                                    error=err) from err
        except OperationFailed as err:
            raise HttpResponseError(response=self._pipeline_response.http_response, error=err) from err


@dataclass(frozen=True)
class Polled:
    state: OperationState
    retry_after_seconds: float = 0.0
    result: Any = None
    error: str = ""


def begin(start: Callable[..., LROPoller[Any]], *args: Any, **kwargs: Any) -> str:
    """Send the operation's initial request; its continuation token (JSON text)."""
    poller = start(*args, polling=Begun(), **kwargs)
    return str(poller.continuation_token())


def poll(start: Callable[..., LROPoller[Any]], token: str, *args: Any) -> Polled:
    """Ask once how the operation of ``token`` stands. ``start`` is the same ``begin_*`` method that began it
    (its positional arguments are not sent again: with a token the SDK skips the initial request)."""
    method = PollOnce()
    poller = start(*args, polling=method, continuation_token=token)
    poller.wait()
    status = poller.status().lower()
    if status in ("succeeded",):
        try:
            return Polled(OperationState.SUCCEEDED, result=poller.result())
        except HttpResponseError as exc:
            return Polled(OperationState.FAILED, error=str(exc).split("\n")[0][:500])
    if status in TERMINAL_FAILED:
        try:
            poller.result()
        except HttpResponseError as exc:
            return Polled(OperationState.FAILED, error=str(exc).split("\n")[0][:500])
        return Polled(OperationState.FAILED, error=f"operation {status}")
    return Polled(OperationState.RUNNING, retry_after_seconds=method.retry_after)
