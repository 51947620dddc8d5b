"""Every kind of decision a rollout records, in one enum: a typo is an error, and a reader can list them all."""

from __future__ import annotations

from enum import StrEnum


class DecisionKind(StrEnum):
    # start: inventory, leases, the approval gate, operator aborts
    INVENTORY = "inventory"
    PLAN_SHADOWS = "plan_shadows"
    CLAIMED = "claimed"
    QUEUED = "queued"
    REFUSED = "refused"
    APPROVED = "approved"
    APPROVAL_TIMEOUT = "approval_timeout"
    ABORTED = "aborted"
    # shadows
    SHADOW_UNAVAILABLE = "shadow_unavailable"
    SHADOW_REGULAR_PRICE = "shadow_regular_price"
    SHADOW_FAMILY_SIZE = "shadow_family_size"
    SHADOW_LOAD = "shadow_load"
    SHADOW_EVICTED = "shadow_evicted"
    ANALYSIS = "analysis"
    TEARDOWN_SHADOWS = "teardown_shadows"
    # the decision before production
    STRATUM_FAILED = "stratum_failed"
    HALT_BEFORE_PRODUCTION = "halt_before_production"
    AMBIGUOUS_EVIDENCE = "ambiguous_evidence"
    ADD_SHADOWS = "add_shadows"
    BASELINE = "baseline"
    BAKE_END = "bake_end"
    SKIP_STRATUM = "skip_stratum"
    SKIP_VMS = "skip_vms"
    UNCOVERED_STRATUM = "uncovered_stratum"
    PROCEED = "proceed"
    MODEL_FALLBACK = "model_fallback"
    MODEL_VERSION = "model_version"
    DRY_RUN = "dry_run"
    ERROR_THRESHOLD = "error_threshold"
    PLAN_WAVES = "plan_waves"
    # production
    SNAPSHOT_AHEAD = "snapshot_ahead"
    DISCARD_SNAPSHOTS = "discard_snapshots"
    PREPARE = "prepare"
    EXCLUDE_VM = "exclude_vm"
    ROLLBACK_VM = "rollback_vm"
    CONTINUE = "continue"
    HALT_IN_PRODUCTION = "halt_in_production"
    RECOVERED = "recovered"
    RESTORE_UNHEALTHY = "restore_unhealthy"
    WITHDRAW_CHANGE = "withdraw_change"
    WATCH_CADENCE = "watch_cadence"
    # capacity
    SCALE_OUT = "scale_out"
    SCALE_IN = "scale_in"
    # the end
    FINISHED = "finished"
    RELEASED = "released"
    LEAK = "leak"
    JANITOR = "janitor"
    OUTCOME_NOT_PUBLISHED = "outcome_not_published"
    ORCHESTRATION_FAILED = "orchestration_failed"
