"""The typed state of a rollout: what the store keeps, what activities take and return, the custom status.

Rows are pydantic models dumped to JSON; the JSON keeps the field names readers of the store already use
(``apply``, ``rollback``, ``config`` ...), so the status page, the training set and the outcome accounting
read the same rows. Domain dataclasses (VmInfo, ApplyResult ...) are stored through their own ``to_dict``.
Orchestrators pass these models as ``model_dump(mode="json")`` and activities validate them on entry.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator

from ..domain.kinds import DecisionKind
from ..domain.model import ApplyResult, Config, ShadowInfo, ShadowPlan, SnapshotInfo, VmInfo
from ..domain.policy import RolloutPolicy
from ..domain.request import RolloutRequest


class RolloutState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    HALTED = "halted"
    ABORTED = "aborted"
    REFUSED = "refused"
    FAILED = "failed"


class RolloutPhase(StrEnum):
    INVENTORY = "inventory"
    WAITING_FOR_TARGETS = "waiting_for_targets"
    REFUSED = "refused"
    SHADOW_POOL = "shadow_pool"
    BASELINE = "baseline"
    APPLY_TO_SHADOWS = "apply_to_shadows"
    BAKE = "bake"
    DECIDED = "decided"
    AWAITING_APPROVAL = "awaiting_approval"
    HALTED_BEFORE_PRODUCTION = "halted_before_production"
    DRY_RUN = "dry_run"
    PRODUCTION = "production"
    HALTED_IN_PRODUCTION = "halted_in_production"
    WATCH = "watch"
    ABORTED = "aborted"
    FAILED = "failed"
    DONE = "done"


class RollbackState(StrEnum):
    QUEUED = "queued"
    RESTORED = "restored"
    RESTORE_FAILED = "restore_failed"
    VERIFIED = "verified"
    UNHEALTHY = "unhealthy"


class VmAction(StrEnum):
    """What was done to a production VM, in order (its audit trail)."""

    SNAPSHOT = "snapshot"
    APPLY = "apply"
    RESTORE = "restore"
    POST_ROLLBACK_SCRIPT = "post_rollback_script"


class ShadowRole(StrEnum):
    TREATED = "treated"
    CONTROL = "control"


class GateOutcome(StrEnum):
    APPROVED = "approved"
    ABORTED = "aborted"
    TIMED_OUT = "timed_out"


class CheckContext(StrEnum):
    """Why production is checked: after a wave (the error threshold applies) or during the watch."""

    WAVE = "wave"
    WATCH = "watch"


# ---------------------------------------------------------------------------------------------- domain values


def _dict_of(value: Any) -> Any:
    return value.to_dict()


def _vm_info(v: Any) -> VmInfo:
    return v if isinstance(v, VmInfo) else VmInfo.from_dict(v)


def _apply(v: Any) -> ApplyResult:
    return v if isinstance(v, ApplyResult) else ApplyResult.from_dict(v)


def _snapshot(v: Any) -> SnapshotInfo:
    return v if isinstance(v, SnapshotInfo) else SnapshotInfo.from_dict(v)


def _shadow(v: Any) -> ShadowInfo:
    return v if isinstance(v, ShadowInfo) else ShadowInfo.from_dict(v)


def _plan(v: Any) -> ShadowPlan:
    return v if isinstance(v, ShadowPlan) else ShadowPlan.from_dict(v)


VmInfoField = Annotated[VmInfo, PlainValidator(_vm_info), PlainSerializer(_dict_of)]
ApplyField = Annotated[ApplyResult, PlainValidator(_apply), PlainSerializer(_dict_of)]
SnapshotField = Annotated[SnapshotInfo, PlainValidator(_snapshot), PlainSerializer(_dict_of)]
ShadowInfoField = Annotated[ShadowInfo, PlainValidator(_shadow), PlainSerializer(_dict_of)]
ShadowPlanField = Annotated[ShadowPlan, PlainValidator(_plan), PlainSerializer(_dict_of)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    def json_dict(self) -> dict[str, Any]:
        """The JSON-able form passed across Durable boundaries and into the store."""
        return self.model_dump(mode="json", exclude_none=True)


# ---------------------------------------------------------------------------------------------- stored rows
class Approval(Model):
    outcome: GateOutcome
    by: str
    reason: str


class Abort(Model):
    by: str
    reason: str


class RolloutRecord(Model):
    """The rollout's one record row: written by steps that run one at a time, so ETags rarely collide."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    rollout_id: str
    request: RolloutRequest
    policy: RolloutPolicy
    started_at: datetime
    state: RolloutState = RolloutState.RUNNING
    phase: RolloutPhase = RolloutPhase.SHADOW_POOL
    vm_count: int
    strata: int
    shadow_chunks: int
    rollback_batches: int = 0
    halted: bool = False
    extra: dict[str, int] = Field(default_factory=dict)
    """Instances borrowed per scale set (resource id), to be given back."""
    original_capacity: dict[str, int] = Field(default_factory=dict)
    claimed: bool = False
    claimed_at: datetime | None = None
    """When the leases were first taken: the ``claimed`` decision is written at that minute, again by a re-run."""
    queued_since: datetime | None = None
    approval: Approval | None = None
    aborted: Abort | None = None
    baseline_start: datetime | None = None
    discarded_at: datetime | None = None
    """When ``discard_snapshots`` first began deleting (written ahead: a re-run records its decision there)."""
    shadow_apply_at: datetime | None = None
    bake_start: datetime | None = None
    """When the last first-round shadow apply finished: minute 0 of the sequential bake."""
    extra_shadows_planned: int = 0
    extra_shadows_base: int = 0
    """How many shadow plans there were before the extra ones (a re-run of ``add_shadows`` plans from these)."""
    decided_at: datetime | None = None
    threshold: float | None = None
    threshold_reason: str | None = None
    predicted_rate: float = 0.0
    withdrawn: bool = False
    """The watch withdrew the change from every changed VM (failures the surprise test could not explain)."""
    at_risk: list[str] = Field(default_factory=list)
    finished_at: datetime | None = None
    error: str | None = None
    refused: str | None = None

    def json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")  # every field present, as readers of the record expect


class Rollback(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)  # part of a VmItem, which readers share

    batch: str
    state: RollbackState
    reason: str
    attempts: int | None = None
    message: str | None = None
    script_ok: bool | None = None


class VmItem(Model):
    """One production VM of the rollout: one row, written by the one activity that handles its chunk.

    Frozen: the repository hands the same instance to every reader of an unchanged row."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    info: VmInfoField
    stratum: str
    config: Config = Config.OLD
    actions: list[VmAction] = Field(default_factory=list)
    snapshot: SnapshotField | None = None
    baseline_errors: float | None = None
    baseline_cpu: float | None = None
    applying: bool = False
    apply: ApplyField | None = None
    applied_at: datetime | None = None
    apply_error: str | None = None
    excluded: str | None = None
    ahead: bool = False
    """Chosen at a bake look for a snapshot before the decision (:mod:`shared.domain.ahead`)."""
    risk: float | None = None
    risk_source: str | None = None
    judge_score: float | None = None
    features: dict[str, float | None] | None = None
    evidence: str | None = None
    skipped: bool | None = None
    wave: int | None = None
    rollback: Rollback | None = None


class ShadowItem(Model):
    info: ShadowInfoField
    plan: int
    role: ShadowRole
    load: float | None = None
    apply: ApplyField | None = None
    deleted: bool = False
    extra: bool = False
    """Added to an ambiguous stratum after the bake: counted through its failures, not the sequential tests."""


class ShadowChunk(Model):
    """One row per chunk of ``apply_to_shadows``: when that chunk's applies had all returned."""

    applied_at: datetime


class VmList(Model):
    """A wave's or a rollback batch's VMs."""

    vm_ids: list[str]


class Standby(Model):
    state: RollbackState = RollbackState.QUEUED


class DecisionRow(Model):
    minute: float
    kind: DecisionKind
    reason: str
    subject: str = ""
    data: dict[str, Any] = Field(default_factory=dict)

    def json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ---------------------------------------------------------------------------------------------- activity payloads
class OperatorEvent(Model):
    """An operator's approve or abort, as the control API raises it."""

    model_config = ConfigDict(extra="ignore")
    by: str | None = None
    reason: str | None = None
    comment: str | None = None
    at: str | None = None


class StartInput(Model):
    request: dict[str, Any]
    """The raw request: validated (with a clear error) by ``parse_request`` inside the activity."""


class RolloutRef(Model):
    rollout_id: str


class ChunkRef(RolloutRef):
    chunk: int


class WaveChunkRef(RolloutRef):
    wave: int
    chunk: int


class BatchRef(RolloutRef):
    batch: str


class BatchChunkRef(BatchRef):
    chunk: int


class CheckInput(RolloutRef):
    context: CheckContext
    wave: int | None = None
    check: str | None = None
    """The caller's idempotency key (its instance and round): what a run found is written ahead under it, so a
    run again after a death part-way queues the same VMs in the same batch and answers the same."""
    withdraw: str | None = None
    """The shadows condemned the change (their halt decision's reason): withdraw it from every changed VM."""


class GateInput(RolloutRef):
    outcome: GateOutcome
    event: OperatorEvent | None = None
    opened_at: datetime


class AbortInput(RolloutRef):
    event: OperatorEvent | None = None
    where: str
    in_production: bool = False


class HaltInput(RolloutRef):
    reason: str
    wave: int | None = None


class FinishInput(RolloutRef):
    error: str | None = None
    refused: str | None = None
    leaks: list[str] = Field(default_factory=list)
    """Cleanups that still failed after their retries: recorded, and left for the janitor."""
    request: dict[str, Any] | None = None
    """The raw request, when ``start_rollout`` failed before it recorded the rollout: the record is made from it."""


# ---------------------------------------------------------------------------------------------- activity results
class StartResult(Model):
    rollout_id: str
    vms: int
    strata: int
    shadow_chunks: int
    policy: RolloutPolicy
    refused: str | None = None
    """Why the rollout cannot start (a target lacks the guest prerequisites): nothing was created or changed."""


class ProductionDoneResult(Model):
    changed: int
    rolled_back: int
    watch_interval: float | None = None


class ClaimResult(Model):
    claimed: bool
    retry_minutes: float | None = None
    reason: str = ""


class GateResult(Model):
    proceed: bool
    reason: str


class HaltResult(Model):
    halt: bool = True
    reason: str = ""


class CreateShadowsResult(Model):
    created: int
    failed: int
    regular: int


class DriveResult(Model):
    driven: int
    baseline_minutes: int = 10


class ApplyShadowsResult(Model):
    applied: int
    failed: int
    slowest_s: float


class AnalysisResult(Model):
    failing: int
    inconclusive: int
    strata: int
    halt: bool
    bake_done: bool = False
    """The sequential bake may end: every stratum decided, the pooled shadows show no harm, or the maximum bake."""
    ambiguous: bool = False
    """Some stratum's evidence is ambiguous (a straddling bound or a suspect undecided test): add shadows."""
    snapshot_ahead: int = 0
    """VMs chosen for a snapshot during the bake that have none yet: the orchestrator starts a pass for them."""


class AddShadowsResult(Model):
    added: int
    chunks: int


class WatchShadowsInput(RolloutRef):
    wave: int


class WatchShadowsResult(Model):
    halt: bool
    doubt: bool = False
    reason: str = ""
    minute: float = 0.0
    """The shadows' bake minute at this look: how far they lead production."""


class DecideResult(Model):
    halt: bool
    waves: list[int] = Field(default_factory=list)
    watch_min: list[float] = Field(default_factory=list)
    watch_max: list[float] = Field(default_factory=list)
    shadow_minute: float = 0.0
    """Minutes since the shadows' apply began, at the decision: the last wave begins its apply no sooner than
    ``bake_minutes`` after it."""
    included: int
    skipped: int
    threshold: float | None = None


class TeardownResult(Model):
    deleted: int


class CapacityResult(Model):
    extra: dict[str, int] = Field(default_factory=dict)
    snapshots: int | None = None


class SnapshotResult(Model):
    snapshots: int


class AheadRef(RolloutRef):
    """One pass of the snapshots taken during the bake (passes run one after another, numbered from 0)."""

    round: int = Field(ge=0)


class DiscardResult(Model):
    deleted: int


class ApplyWaveResult(Model):
    applied: int
    failed: int
    excluded: int


class CheckResult(Model):
    failing: int
    batch: str = ""
    chunks: int = 0
    halt: bool = False
    changed: int = 0


class RestoreChunkResult(Model):
    restored: int
    failed: int = 0


class VerifyResult(Model):
    verified: int
    unhealthy: int


class PastDecision(Model):
    """A decision as found, kept until it is recorded (a written-ahead check's verdict)."""

    kind: DecisionKind
    reason: str
    subject: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class CheckMemo(Model):
    """What a production check found, written ahead under the caller's key before it acted on it."""

    failing: dict[str, str] = Field(default_factory=dict)
    """VM id -> why it fails (queued for rollback in ``answer.batch``)."""
    failing_total: int = 0
    verdict: PastDecision | None = None
    withdraw: bool = False
    """The watch withdraws the change from every changed VM (failures the surprise test could not explain)."""
    withdrawal: PastDecision | None = None
    """Between waves: the withdrawal that follows the halt ``verdict`` records."""
    answer: CheckResult
    done: bool = False


class ReleaseResult(Model):
    released: int


class FinishResult(Model):
    state: RolloutState
    halted: bool
    on_new_config: int
    rolled_back: int


# ---------------------------------------------------------------------------------------------- orchestrations
class WaveInput(RolloutRef):
    wave: int
    chunks: int
    watch_minutes: float
    """The longest watch after the wave's apply."""
    min_watch_minutes: float | None = None
    """The shortest: the watch ends here unless the shadows still leave doubt (None: ``watch_minutes``)."""
    shadows: bool = False
    """The shadows are still running and are looked at after the watch (they lead production)."""


class WaveOutcome(Model):
    halt: bool
    failing: int


class WatchInput(RolloutRef):
    until: datetime
    interval: float
    generation: int = 0


class WatchOutcome(Model):
    watched_until: datetime


class RecoverInput(RolloutRef):
    batch: str
    chunks: int


class ShadowTotals(Model):
    created: int
    failed: int
    regular_price: int


class ApprovalStatus(Model):
    opened_at: datetime
    timeout_at: datetime
    on_timeout: str
    outcome: GateOutcome | None = None
    reason: str | None = None


class RolloutStatus(Model):
    """The orchestration's custom status (what the status page shows while it runs)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    rollout_id: str
    phase: RolloutPhase
    reason: str | None = None
    vms: int | None = None
    strata: int | None = None
    shadows: int | None = None
    shadow_results: ShadowTotals | None = None
    analysis: AnalysisResult | None = None
    decision: DecideResult | None = None
    approval: ApprovalStatus | None = None
    capacity: CapacityResult | None = None
    rollbacks: int | None = None
    wave: int | None = None
    waves: int | None = None
    waves_done: int | None = None
    # the production watch after the last wave (or after a halt in production): from when, until when
    watch_started_at: datetime | None = None
    watch_until: datetime | None = None
    aborted: bool | None = None
    error: str | None = None
    result: FinishResult | None = None


class WaveStatus(Model):
    wave: int
    snapshot_error: str
