"""Long-running operations as the rollout sees them: begun by one activity, polled by others.

ARM answers a long-running request at once (201/202 with ``Azure-AsyncOperation`` or ``Location`` and a
``Retry-After``) and the client polls the operation until it is terminal ("Track asynchronous Azure
operations", learn.microsoft.com/azure/azure-resource-manager/management/async-operations). An activity that
waited for the end would hold a Functions worker for as long as Azure takes, and the host kills an activity at
``functionTimeout`` (Flex Consumption: 30 minutes by default). So an activity only begins an operation and
returns its handle; the orchestrator waits on durable timers and asks for the status (the Durable Functions
monitor pattern), and a last activity reads the results. A handle is plain JSON, so it survives a replay.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from .errors import ShadowRolloutError


class OperationKind(StrEnum):
    APPLY = "apply"
    SNAPSHOT = "snapshot"
    RESTORE = "restore"
    CREATE_SHADOWS = "create_shadows"


class OperationState(StrEnum):
    """ARM's provisioning states of an operation (``InProgress`` → Succeeded | Failed | Canceled), plus the
    orchestrator's own verdict when it stopped waiting."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self is not OperationState.RUNNING


class OperationHandle(BaseModel):
    """What identifies a begun operation across activities: its key is deterministic (rollout, step, chunk),
    so a begin run twice finds the operation it began and starts nothing; ``token`` is the adapter's own
    (e.g. the SDK's continuation tokens), opaque to the rollout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1, max_length=300)
    kind: OperationKind
    begun_at: datetime
    items: int = Field(ge=0)
    """How many resources it acts on (each VM of a batch is one Azure operation)."""
    token: str = ""


class OperationStatus(BaseModel):
    """One answer to a poll: the state and how long to wait before asking again (ARM's ``Retry-After``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    handle: OperationHandle
    state: OperationState
    retry_after_seconds: float = Field(default=0.0, ge=0.0)
    ended_at: datetime | None = None
    """When a terminal operation ended (ARM's ``endTime``): what the step records, not when it was polled."""
    message: str = ""
    retry_after_is_end: bool = False
    """The Retry-After is the time left to the operation's end (the simulator computes an operation's course
    whole): asking it sooner begins nothing, so it is asked with the step's slowest. False (ARM): the Retry-After
    of the operation's current step, after which a poll may begin its next step, so it is asked when its own is
    up."""

    def json_dict(self) -> dict[str, object]:
        return self.model_dump(mode="json")


class OperationPending(ShadowRolloutError):
    """Results were asked of an operation that has not ended: the orchestrator must poll until it has."""
