"""Rules for steering a rollout: what to do when its targets are busy, and what a gate's outcome means.

Pure functions of the policy and what happened; each returns a :class:`Decision` whose reason says the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .decisions import Decision
from .kinds import DecisionKind
from .policy import RolloutPolicy


def _name(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def on_busy_targets(conflicts: Sequence[tuple[str, str, str]], policy: RolloutPolicy,
                    waited_minutes: float) -> Decision:
    """Another rollout holds some targets: queue (retry later) while the wait allows it, else refuse.

    ``conflicts`` are (resource id, holding rollout, held since). ``data["retry_minutes"]`` is None when refused.
    """
    held = ", ".join(f"{_name(r)} by rollout {h} (since {s})" for r, h, s in conflicts)
    if policy.on_busy == "queue" and waited_minutes < policy.busy_wait_minutes:
        return Decision(DecisionKind.QUEUED, f"{len(conflicts)} target scale sets are held: {held}; waited "
                        f"{waited_minutes:.0f} of {policy.busy_wait_minutes} minutes, retrying in "
                        f"{policy.busy_retry_minutes}", data={"retry_minutes": policy.busy_retry_minutes})
    why = (f"waited {waited_minutes:.0f} minutes >= busy_wait_minutes {policy.busy_wait_minutes}"
           if policy.on_busy == "queue" else "policy on_busy is 'refuse'")
    return Decision(DecisionKind.REFUSED, f"{len(conflicts)} target scale sets are held: {held}; {why}",
                    data={"retry_minutes": None})


def gate_outcome(outcome: str, event: Any, policy: RolloutPolicy, waited_minutes: float) -> Decision:
    """What the approval gate's race ended with: ``approved``, ``aborted`` or ``timed_out``."""
    by = event.get("by", "unknown") if isinstance(event, dict) else "unknown"
    note = event.get("reason") or event.get("comment") if isinstance(event, dict) else None
    suffix = f": {note}" if note else ""
    if outcome == "approved":
        return Decision(DecisionKind.APPROVED, f"approved by {by} after {waited_minutes:.0f} minutes{suffix}",
                        data={"proceed": True, "by": by})
    if outcome == "aborted":
        return Decision(DecisionKind.ABORTED, f"aborted by {by} at the approval gate after {waited_minutes:.0f} minutes"
                        f"{suffix}", data={"proceed": False, "by": by})
    if outcome != "timed_out":
        raise ValueError(f"unknown gate outcome {outcome!r}")
    proceed = policy.on_approval_timeout == "proceed"
    return Decision(DecisionKind.APPROVAL_TIMEOUT, f"no approval within approval_timeout_minutes "
                    f"{policy.approval_timeout_minutes}; policy on_approval_timeout is "
                    f"'{policy.on_approval_timeout}': {'proceeding' if proceed else 'halting before production'}",
                    data={"proceed": proceed, "by": "timeout"})
