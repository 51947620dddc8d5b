"""The polling activity of long-running operations and what the steps share to finish one.

``operation_status`` only reads (one poll per operation), so it is safe to run any number of times. A step
begun by ``begin_<step>`` names its operation by the rollout, the step and the chunk: run again, the begin finds
the operation it began (docs/operations.md, "Long-running operations").
"""

from __future__ import annotations

from collections.abc import Sequence

from ...domain.model import ApplyResult, ApplyStatus
from ...domain.operations import OperationState, OperationStatus
from ...services import Services
from ..operations import StatusAnswer, StatusQuery

BEGIN = ":begin"
"""Suffix of a begin activity's decision scope, so that its decisions never share keys with its step's."""


def operation_key(rollout_id: str, what: str, scope: str) -> str:
    return f"{rollout_id}:{what}:{scope}"


def operation_status(svc: Services, payload: StatusQuery) -> StatusAnswer:
    return StatusAnswer(statuses=svc.operations.status(payload.handles))


def apply_outcome(svc: Services, op: OperationStatus, vm_ids: Sequence[str]) -> list[ApplyResult] | None:
    """Each VM's apply as the operation ended; a wait that timed out is a time-out of every VM still in it
    (recorded as the change's own time-out is); None when Azure failed the batch as a whole."""
    if op.state is OperationState.SUCCEEDED:
        return svc.operations.apply_results(op.handle, vm_ids)
    if op.state is OperationState.TIMED_OUT:
        waited = round((svc.now() - op.handle.begun_at).total_seconds(), 1)
        return [ApplyResult(v, ApplyStatus.TIMEOUT, None, waited, op.message) for v in vm_ids]
    return None
