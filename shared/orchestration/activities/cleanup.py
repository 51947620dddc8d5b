"""Leave nothing behind: lease release as an activity of its own (retried apart from ``finish``), and a record for
a rollout that failed before ``start_rollout`` recorded it, so that it still ends with one and an outcome event."""

from __future__ import annotations

from ...domain.decisions import Decision
from ...domain.kinds import DecisionKind
from ...domain.policy import RolloutPolicy
from ...domain.request import parse_request
from ...services import Services
from ..repository import RolloutRepository, Step
from ..state import FinishInput, ReleaseResult, RolloutPhase, RolloutRecord, RolloutRef
from .common import Rollout


def release_leases(svc: Services, payload: RolloutRef) -> ReleaseResult:
    """Give the target scale sets back to the queue; releasing twice releases nothing the second time."""
    released = svc.leases.release(payload.rollout_id)
    if released and RolloutRepository(svc.store, payload.rollout_id).record() is not None:
        Rollout(svc, payload.rollout_id, Step.RELEASE_LEASES).decide([Decision(
            DecisionKind.RELEASED, f"{released} target scale set{'' if released == 1 else 's'} released")])
    return ReleaseResult(released=released)


def ensure_record(svc: Services, payload: FinishInput) -> None:
    """A rollout that failed before ``start_rollout`` recorded it gets a record from its request (validated
    again: a request the intake let through parses), so that it can end with one."""
    repo = RolloutRepository(svc.store, payload.rollout_id)
    if repo.record() is not None or payload.request is None:
        return
    req = parse_request(payload.request)
    repo.put_record(RolloutRecord(
        rollout_id=payload.rollout_id, request=req, policy=RolloutPolicy().with_overrides(req.policy),
        started_at=svc.now(), phase=RolloutPhase.INVENTORY, vm_count=0, strata=0, shadow_chunks=0))
