"""The rollout policy: every knob has a named default and a reason.

Overrides come from a scenario's ``policy`` block or a rollout request; unknown keys and out-of-range
values are refused with a :class:`PolicyError` that names the key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import PolicyError


class RolloutPolicy(BaseModel):
    # NaN passes every range check (it compares false), so it and the infinities are refused outright
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # --- shadow pool ---------------------------------------------------------------------------
    shadow_fraction: float = Field(0.02, ge=0.0, le=1.0, description="Share of each stratum cloned as shadows.")
    min_shadows_per_stratum: int = Field(
        2, ge=1, le=20, description="Two shadows per stratum let one eviction leave the stratum covered."
    )
    max_shadows: int = Field(2000, ge=1, description="Cost cap on the shadow pool.")
    control_shadows_per_group: int = Field(
        1, ge=0, le=10, description="Untouched twins per (scale set, SKU, image): what changes without the change."
    )
    spot_fallback: Literal["regular", "family", "skip"] = Field(
        "regular", description="When Spot is refused for a SKU: a regular-priced VM of the same SKU (at most "
        "max_regular_shadows of them), a Spot VM of another size of the same family, or none."
    )
    max_regular_shadows: int = Field(
        50, ge=0, le=10_000, description="Cap on regular-priced shadows, which cost 5-10x a Spot one."
    )
    # --- bake and analysis ---------------------------------------------------------------------
    baseline_minutes: int = Field(10, ge=3, le=240, description="Pre-change window on each shadow.")
    twin_baseline_minutes: int = Field(
        10, ge=3, le=240, description="Pre-change window when every stratum has a running control twin: the twins "
        "measure the environment during the bake, so the baseline only places each shadow's centre. Shorter than "
        "baseline_minutes does not pay on the simulator (5-8 minutes made the sequential bake's 'no harm' take "
        "longer, its centres being less sure), so it defaults to the same 10."
    )
    bake_minutes: int = Field(30, ge=5, le=1440, description="The longest bake: the sequential test ends it sooner "
                              "when harm, or no harm at the tolerable effect, is shown.")
    min_bake_minutes: int = Field(10, ge=0, le=1440, description="'No harm' is not declared before this.")
    bake_check_minutes: int = Field(2, ge=1, le=240, description="Interval of the bake's sequential looks.")
    max_extra_shadows: int = Field(
        10, ge=0, le=1000, description="Shadows added, in all, to strata whose evidence is ambiguous before deciding."
    )
    extra_shadows_per_stratum: int = Field(2, ge=1, le=20, description="Shadows added to one ambiguous stratum.")
    adaptive_waves: bool = Field(
        True, description="Waves follow the evidence (shared/domain/waves.py); false: wave_fractions and "
        "wave_watch_minutes as given."
    )
    judge_alpha: float = Field(0.001, gt=0.0, lt=0.5, description="Mann-Whitney significance, before Bonferroni.")
    judge_tolerance: float = Field(
        0.25, ge=0.0, le=5.0, description="Relative change a signal must exceed to count (Kayenta's default)."
    )
    probe_failure_tolerance: float = Field(
        0.01, ge=0.0, lt=1.0, description="Share of health probes a changed shadow may fail: a rate significantly "
        "above it (and above the baseline's) fails the stratum, however small the relative change."
    )
    memory_projection_minutes: int = Field(
        1440, ge=60, description="A leak that would exhaust memory within this time fails the stratum."
    )
    cpu_saturation_pct: float = Field(95.0, gt=50.0, le=100.0, description="CPU at which a VM saturates.")
    # --- decisions before production -----------------------------------------------------------
    dry_run: bool = Field(
        False, description="Shadows, analysis and per-VM predictions only: stop before production."
    )
    skip_probability: float = Field(0.5, gt=0.0, le=1.0, description="VMs predicted at or above are skipped.")
    confident_failure: float = Field(0.9, gt=0.0, le=1.0, description="A prediction at or above is confident.")
    halt_fleet_share: float = Field(
        0.5, gt=0.0, le=1.0, description="Halt before production when confident failures cover this share."
    )
    tolerable_failure_rate: float = Field(
        0.02, gt=0.0, lt=1.0, description="Share of VMs the change may impair before it is a bad change: a stratum "
        "is skipped, and the fleet halted, when the lower bound of its shadows' failure rate exceeds it."
    )
    bound_confidence: float = Field(
        0.95, ge=0.5, lt=1.0, description="One-sided confidence of the failure-rate bounds (Clopper-Pearson)."
    )
    snapshot_probability: float = Field(
        0.1, ge=0.0, le=1.0, description="VMs predicted at or above get snapshots and a queued rollback early."
    )
    snapshots_during_bake: bool = Field(
        True, description="Snapshot the VMs predicted at risk while the shadows bake, so production starts without "
        "waiting for them (deleted when the rollout changes no VM)."
    )
    first_wave_snapshots_during_bake: bool = Field(
        False, description="Also snapshot the first wave's VMs during the bake. Off: measured, it did not shorten a "
        "good change (the last wave waits for the shadows' lead) and moved every wave's checks earlier "
        "(bench/README.md, 'Before and after')."
    )
    # --- production waves ----------------------------------------------------------------------
    wave_fractions: tuple[float, ...] = Field(
        (0.05, 0.2, 0.35, 0.4), min_length=1, description="Share of the included VMs in each wave."
    )
    wave_watch_minutes: int = Field(10, ge=1, le=1440, description="Watch after each wave before the next.")
    base_error_threshold: float = Field(
        0.005, ge=0.0, le=1.0, description="Failure rate of changed VMs expected when the shadows predict none (the "
        "production surprise test's floor)."
    )
    threshold_multiplier: float = Field(
        2.0, ge=0.0, le=100.0, description="Not used since the surprise test (kept so older policies still load)."
    )
    max_error_threshold: float = Field(
        0.2, ge=0.0, le=1.0, description="Cap on the expected rate, below tolerable_failure_rate, which also caps it."
    )
    surprise_alpha: float = Field(
        0.05, gt=0.0, lt=0.5, description="Halt production when this many failures among the changed VMs would be "
        "this unlikely at the expected rate (a binomial tail)."
    )
    unhealthy_probe_minutes: int = Field(
        3, ge=1, le=60, description="Failed health probes within the last window that make a VM unhealthy."
    )
    health_window_minutes: int = Field(5, ge=1, le=60, description="Window of the health rule above.")
    flap_window_minutes: int = Field(15, ge=1, le=120, description="Window of the flapping-probe rule.")
    flap_failures: int = Field(
        4, ge=1, le=120, description="Failed probes within the flap window that make a VM failing."
    )
    error_window_minutes: int = Field(15, ge=1, le=120, description="Window of the error-rate rule.")
    error_rate_factor: float = Field(
        5.0, gt=1.0, description="Median error-log rate over its own pre-change rate and its peers' that fails a VM."
    )
    apply_timeout_minutes: int = Field(15, ge=1, le=180, description="An apply that runs longer has failed.")
    # --- recovery and capacity -----------------------------------------------------------------
    post_rollback_script: str = Field(
        "systemctl restart app.service && curl -fsS http://localhost/health",
        description="Run on a VM after its disk is restored.",
    )
    production_watch_minutes: int = Field(
        1440, ge=0, le=10080, description="Production is watched this long after the last wave."
    )
    watch_interval_minutes: int = Field(10, ge=1, le=240, description="Longest interval of production checks "
                                        "after the last wave; shorter when the waves' leads ask for it "
                                        "(shared/domain/waves.py, watch_cadence).")
    target_utilisation: float = Field(0.7, gt=0.0, le=1.0, description="Utilisation a VM should stay under.")
    capacity_buffer_instances: int = Field(0, ge=0, le=100, description="Extra instances on every scale-out.")
    # --- human gate and concurrency ------------------------------------------------------------
    approval_required: bool = Field(
        False, description="Wait for an operator's approval after the decision, before production is touched."
    )
    approval_timeout_minutes: int = Field(
        240, ge=1, le=10080, description="How long the approval gate waits before its timeout rule applies."
    )
    four_eyes: bool = Field(
        True, description="The approver may be neither the requester nor the identity the request came through. "
        "Only the intake configuration may turn it off (a request cannot waive its own check)."
    )
    on_approval_timeout: Literal["halt", "proceed"] = Field(
        "halt", description="At the gate's timeout: halt before production (safe default), or proceed."
    )
    on_busy: Literal["refuse", "queue"] = Field(
        "refuse", description="When another rollout holds a target scale set: refuse this one, or queue behind it."
    )
    busy_wait_minutes: int = Field(
        240, ge=0, le=10080, description="A queued rollout gives up (refused) after waiting this long for its targets."
    )
    busy_retry_minutes: int = Field(10, ge=1, le=240, description="Interval at which a queued rollout retries.")

    @model_validator(mode="after")
    def _check(self) -> RolloutPolicy:
        if abs(sum(self.wave_fractions) - 1.0) > 1e-6:
            raise ValueError(f"wave_fractions must add up to 1.0 (they add up to {sum(self.wave_fractions):.3f})")
        if any(f <= 0 for f in self.wave_fractions):
            raise ValueError("wave_fractions must all be > 0")
        if self.min_bake_minutes > self.bake_minutes:
            raise ValueError("min_bake_minutes must be <= bake_minutes")
        if self.confident_failure < self.skip_probability:
            raise ValueError("confident_failure must be >= skip_probability")
        return self

    def with_overrides(self, overrides: dict[str, Any] | None) -> RolloutPolicy:
        """A copy with ``overrides`` applied, validated as a whole."""
        if not overrides:
            return self
        return parse_policy({**self.model_dump(), **overrides})


def parse_policy(data: dict[str, Any] | None, *, where: str = "policy") -> RolloutPolicy:
    """Validate a policy mapping; errors name ``where.key``."""
    try:
        return RolloutPolicy.model_validate(data or {})
    except ValidationError as exc:
        raise PolicyError(format_validation_error(exc, where)) from exc


def format_validation_error(exc: ValidationError, where: str) -> str:
    """One line per problem, each naming the key's full path."""
    lines = []
    for err in exc.errors():
        parts = [f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"]]
        path = ".".join([where, *parts] if where else parts).replace(".[", "[") or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], dict):
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"{path}: {msg}")
    return "; ".join(lines)


DEFAULT_POLICY = RolloutPolicy()
