"""A request to roll a configuration change out to scale sets: what every trigger turns its input into."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import RequestError
from .policy import format_validation_error, parse_policy

_VMSS_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/virtualMachineScaleSets/[^/]+$",
    re.IGNORECASE,
)


class ChangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    change_id: str = Field(min_length=1, max_length=128)
    kind: Literal["run-command", "extension", "model-update"] = "run-command"
    payload: dict[str, Any] = Field(default_factory=dict)
    version: str | None = None


class RolloutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rollout_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    targets: list[str] = Field(min_length=1, max_length=200)
    change: ChangeRequest
    policy: dict[str, Any] = Field(default_factory=dict)
    requester: str = "unknown"
    source: str = "api"

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        for t in v:
            if not _VMSS_ID.match(t):
                raise ValueError(f"not a virtual machine scale set resource id: {t!r}")
        if len(set(v)) != len(v):
            raise ValueError("targets must be distinct")
        return v


def parse_request(data: Any) -> RolloutRequest:
    if not isinstance(data, dict):
        raise RequestError(f"request: expected a JSON object (got {type(data).__name__})")
    try:
        req = RolloutRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestError(format_validation_error(exc, "request")) from exc
    parse_policy(req.policy, where="request.policy")
    return req
