"""The scenario file format of the public contract (YAML or JSON), validated key by key.

Unknown keys, wrong types and out-of-range values are refused with a :class:`ScenarioError` naming the key's
full path, e.g. ``fleet.scale_sets[0].capacity: Input should be less than or equal to 1000 (got 5000)``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ...domain.errors import ScenarioError
from ...domain.policy import RolloutPolicy, format_validation_error
from ...domain.regions import REGIONS
from ...domain.scale_set_limits import max_instances
from ...domain.skus import SKU_SIZES


class Mode(StrEnum):
    CRASH_ON_APPLY = "crash_on_apply"
    APPLY_TIMEOUT = "apply_timeout"
    MEMORY_LEAK = "memory_leak"
    CPU_REGRESSION = "cpu_regression"
    ERROR_BURST = "error_burst"
    HEALTH_FLAP = "health_flap"
    NETWORK_DEGRADATION = "network_degradation"
    LATENT_CRASH = "latent_crash"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Load(_Strict):
    mean: float = Field(0.4, ge=0.0, le=1.0)
    diurnal_amplitude: float = Field(0.1, ge=0.0, le=1.0)
    noise: float = Field(0.03, ge=0.0, le=1.0)


def _known_skus(skus: Any, what: str) -> None:
    """SKUs come from the catalogue (shared/domain/skus.py): a typo is refused, never simulated as a new size."""
    for sku in skus:
        if sku not in SKU_SIZES:
            raise ValueError(f"unknown {what} {sku!r}: not in the SKU catalogue (shared/domain/skus.py: "
                             f"{len(SKU_SIZES)} sizes, e.g. {', '.join(sorted(SKU_SIZES)[:3])})")


def _weights(v: dict[str, float], what: str) -> dict[str, float]:
    if not v:
        raise ValueError(f"at least one {what} is required")
    for k, w in v.items():
        if w <= 0:
            raise ValueError(f"weight of {k!r} must be > 0 (got {w})")
    return v


class ScaleSet(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    orchestration: Literal["Flexible", "Uniform"] = "Flexible"
    capacity: int = Field(ge=1, le=1000)
    zones: list[str] = Field(default_factory=lambda: ["1", "2", "3"], min_length=1)
    skus: dict[str, float] = Field(default_factory=lambda: {"Standard_D4s_v5": 1.0})
    images: dict[str, float] = Field(default_factory=lambda: {"ubuntu-22.04": 1.0})
    load: Load = Field(default_factory=Load)
    tags: dict[str, str] = Field(default_factory=dict)  # resource tags, for intake scope rules
    # VM extensions in the scale set's model: by default the guest prerequisites (shared/domain/guest.py)
    extensions: list[str] = Field(default_factory=lambda: ["AzureMonitorLinuxAgent", "shadow-rollout-guest"])
    region: str | None = None
    """The scale set's region when it is not the fleet's (a fleet in several regions)."""
    single_placement_group: bool = False
    """Uniform only: one placement group, which holds at most 100 instances (shared/domain/scale_set_limits.py);
    the default, false, is a large scale set of up to 1,000."""

    @property
    def max_capacity(self) -> int:
        return max_instances(self.orchestration, self.single_placement_group)

    @model_validator(mode="after")
    def _within_limit(self) -> ScaleSet:
        if self.single_placement_group and self.orchestration == "Flexible":
            raise ValueError("single_placement_group: a Flexible scale set requires singlePlacementGroup false")
        if self.capacity > self.max_capacity:
            raise ValueError(f"capacity {self.capacity} is above the scale set's maximum of {self.max_capacity} "
                             "(a single placement group holds at most 100)")
        return self

    @field_validator("region")
    @classmethod
    def _set_region(cls, v: str | None) -> str | None:
        if v is not None and v not in REGIONS:
            raise ValueError(f"unknown region {v!r}: not in the region catalogue (shared/domain/regions.py)")
        return v

    @field_validator("skus")
    @classmethod
    def _skus(cls, v: dict[str, float]) -> dict[str, float]:
        _known_skus(v, "SKU")
        return _weights(v, "SKU")

    @field_validator("images")
    @classmethod
    def _images(cls, v: dict[str, float]) -> dict[str, float]:
        return _weights(v, "image")

    @field_validator("zones")
    @classmethod
    def _zones(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"zones must be distinct (got {v})")
        return v


class Fleet(_Strict):
    region: str = "eastus"
    scale_sets: list[ScaleSet] = Field(min_length=1, max_length=200)

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if v not in REGIONS:
            raise ValueError(f"unknown region {v!r}: not in the region catalogue (shared/domain/regions.py); "
                             "use the programmatic name, e.g. eastus, westeurope")
        return v

    @model_validator(mode="after")
    def _unique(self) -> Fleet:
        seen: set[str] = set()
        for s in self.scale_sets:
            if s.name.casefold() in seen:  # ARM names compare case-insensitively
                raise ValueError(f"duplicate scale set name {s.name!r}")
            seen.add(s.name.casefold())
        return self


class When(_Strict):
    scale_sets: list[str] | None = None
    skus: list[str] | None = None
    images: list[str] | None = None
    zones: list[str] | None = None
    load_above: float | None = Field(None, ge=0.0, le=1.0)


class Effect(_Strict):
    mode: Mode
    when: When = Field(default_factory=When)
    probability: float = Field(1.0, ge=0.0, le=1.0)
    onset_minutes: float = Field(0.0, ge=0.0, le=100000.0)
    severity: float = Field(0.5, ge=0.0, le=1.0)


class Truth(_Strict):
    effects: list[Effect] = Field(default_factory=list)


class Change(_Strict):
    id: str = Field(min_length=1, max_length=128)
    kind: Literal["run-command", "extension", "model-update"] = "run-command"
    payload: dict[str, Any] = Field(default_factory=dict)
    truth: Truth = Field(default_factory=Truth)


class Faults(_Strict):
    spot_evictions_per_hour: float = Field(0.0, ge=0.0, le=60.0)
    spot_unavailable_skus: list[str] = Field(default_factory=list)

    @field_validator("spot_unavailable_skus")
    @classmethod
    def _skus(cls, v: list[str]) -> list[str]:
        _known_skus(v, "SKU")
        return v
    arm_throttle_rate: float = Field(0.0, ge=0.0, le=1.0)
    arm_transient_error_rate: float = Field(0.0, ge=0.0, le=1.0)
    snapshot_failure_rate: float = Field(0.0, ge=0.0, le=1.0)
    restore_failure_rate: float = Field(0.0, ge=0.0, le=1.0)


class Scenario(_Strict):
    name: str = Field(min_length=1, max_length=128)
    family: str | None = None
    tags: list[str] = Field(default_factory=list)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    horizon_minutes: int = Field(1440, ge=1, le=100000)
    fleet: Fleet
    change: Change
    policy: dict[str, Any] = Field(default_factory=dict)
    faults: Faults = Field(default_factory=Faults)

    @property
    def is_good_change(self) -> bool:
        """Only a hint: whether a VM would really be affected is drawn per VM by the simulator."""
        return not any(e.probability > 0 for e in self.change.truth.effects)

    def rollout_policy(self) -> RolloutPolicy:
        from ...domain.policy import parse_policy

        try:
            return parse_policy(self.policy)
        except Exception as exc:  # PolicyError already names policy.<key>
            raise ScenarioError(str(exc)) from exc


def _check_when(scenario: Scenario, source: str) -> None:
    """Every value an effect's ``when`` names must be one the fleet declares, as written in the file (not as drawn
    for a seed): a typo would otherwise match nothing and silently turn a bad change into a good one."""
    sets = scenario.fleet.scale_sets
    declared: dict[str, set[str]] = {
        "scale_sets": {s.name for s in sets}, "skus": {k for s in sets for k in s.skus},
        "images": {k for s in sets for k in s.images}, "zones": {z for s in sets for z in s.zones}}
    what = {"scale_sets": "scale set", "skus": "SKU", "images": "image", "zones": "zone"}
    for i, effect in enumerate(scenario.change.truth.effects):
        for key, known in declared.items():
            for unknown in sorted(set(getattr(effect.when, key) or []) - known):
                raise ScenarioError(f"{source}: change.truth.effects[{i}].when.{key}: unknown {what[key]} "
                                    f"{unknown!r}; the fleet declares {sorted(known)}")


def parse_scenario(data: Any, *, source: str = "scenario") -> Scenario:
    """Validate an already-parsed mapping."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: the top level must be a mapping (got {type(data).__name__})")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"{source}: {format_validation_error(exc, '')}") from exc
    _check_when(scenario, source)
    scenario.rollout_policy()
    return scenario


def load_scenario(path: str | Path) -> Scenario:
    """Read a YAML or JSON scenario file; any problem becomes a ScenarioError naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read the file ({exc.strerror})") from exc
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: {exc}") from exc
    return parse_scenario(data, source=str(p))
