"""The intake mapping: which release environment or configuration key becomes which rollout, and the scope.

Read from the document named by the ``SHADOW_ROLLOUT_INTAKE_CONFIG`` app setting (a YAML or JSON file path),
or given inline as JSON in ``SHADOW_ROLLOUT_INTAKE_CONFIG_JSON``. Documented in docs/intake.md with an example
in docs/examples/intake.yaml. A missing or invalid document is a :class:`ConfigurationError`: the input is not
at fault, so triggers let the platform retry it rather than reject it.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..domain.errors import ConfigurationError, PolicyError
from ..domain.policy import format_validation_error, parse_policy
from ..domain.request import check_scale_set_ids
from ..domain.scope import Scope

CONFIG_PATH_SETTING = "SHADOW_ROLLOUT_INTAKE_CONFIG"
CONFIG_JSON_SETTING = "SHADOW_ROLLOUT_INTAKE_CONFIG_JSON"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChangeTemplate(_Strict):
    """The change a route starts. Text fields may name ``{placeholders}`` filled from the input (see docs)."""

    change_id: str = Field(min_length=1, max_length=200)
    kind: Literal["run-command", "extension", "model-update"] = "run-command"
    payload: dict[str, Any] = Field(default_factory=dict)
    version: str | None = None


class _Route(_Strict):
    targets: list[str] = Field(min_length=1, max_length=200)
    change: ChangeTemplate
    policy: dict[str, Any] = Field(default_factory=dict)

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        return check_scale_set_ids(v)

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            parse_policy(v, where="policy")
        except PolicyError as exc:
            raise ValueError(str(exc)) from exc
        return v


class DevOpsRoute(_Route):
    """An Azure DevOps release environment (stage), optionally narrowed to a project and release definition."""

    environment: str = Field(min_length=1)
    project: str | None = None
    release_definition: str | None = None
    change: ChangeTemplate = ChangeTemplate(change_id="{release_name}", version="{release_name}")


class AppConfigurationRoute(_Route):
    """An App Configuration key (a glob: ``*`` and ``?``) and label (None: any label; ``""``: no label)."""

    key: str = Field(min_length=1)
    label: str | None = None
    change: ChangeTemplate = ChangeTemplate(change_id="{key}@{etag}", version="{etag}")


class ResourceWrites(_Strict):
    """What a model change made outside this tool (``virtualMachineScaleSets/write``) leads to."""

    action: Literal["rollout", "report", "ignore"] = "report"
    ignore_callers: list[str] = Field(
        default_factory=list, description="Object or application ids whose writes are this app's own (its "
                                          "managed identity) or otherwise expected: such events are ignored.")
    change: ChangeTemplate = ChangeTemplate(
        change_id="model-{event_id}", kind="model-update",
        payload={"apply": "upgrade-instances-to-latest-model", "resource": "{resource_id}"})
    policy: dict[str, Any] = Field(default_factory=dict)


class IntakeConfig(_Strict):
    scope: Scope | None = Field(description="Where rollouts may act (required: an unscoped configuration exists only "
                                            "as intake-check's dry run without --config).")
    devops: list[DevOpsRoute] = Field(default_factory=list)
    app_configuration: list[AppConfigurationRoute] = Field(default_factory=list)
    resource_writes: ResourceWrites = ResourceWrites()
    allow_four_eyes_off: bool = Field(False, description="Whether a request may set policy four_eyes: false "
                                                         "(route policies here may always).")

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: Scope | None) -> Scope:
        if v is None:
            raise ValueError("scope is required (an intake without a scope could act anywhere)")
        return v

    @classmethod
    def unscoped(cls) -> IntakeConfig:
        """No routes and no scope: intake-check's dry run without --config (never read from a file)."""
        return cls.model_construct(scope=None, devops=[], app_configuration=[], resource_writes=ResourceWrites(),
                                   allow_four_eyes_off=False)


def parse_intake_config(data: Any, where: str = "intake") -> IntakeConfig:
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where}: expected a mapping (got {type(data).__name__})")
    try:
        return IntakeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(format_validation_error(exc, where)) from exc


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> IntakeConfig:
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML/JSON: {exc}") from exc
    return parse_intake_config(data, where=Path(path).name)


def load_intake_config(environ: dict[str, str] | None = None) -> IntakeConfig:
    """The intake configuration named by the app settings (re-read when its file changes)."""
    env = os.environ if environ is None else environ
    inline = env.get(CONFIG_JSON_SETTING)
    if inline:
        try:
            return parse_intake_config(json.loads(inline), where=CONFIG_JSON_SETTING)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{CONFIG_JSON_SETTING}: not valid JSON: {exc}") from exc
    path = env.get(CONFIG_PATH_SETTING)
    if not path:
        raise ConfigurationError(f"no intake configuration: set {CONFIG_PATH_SETTING} to a YAML or JSON file "
                                 f"(or {CONFIG_JSON_SETTING} to the document)")
    p = Path(path)
    if not p.is_file():
        raise ConfigurationError(f"{CONFIG_PATH_SETTING}={path}: no such file")
    return _load(str(p), p.stat().st_mtime)
