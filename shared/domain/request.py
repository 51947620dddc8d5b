"""A request to roll a configuration change out to scale sets: what every trigger turns its input into.

Its JSON Schema is published in ``docs/rollout-request.schema.json`` (``shadow-rollout schema`` writes it; a
test keeps the file in step with this model). Every trigger, whatever it receives (the project's own message,
an Azure DevOps service hook, an Event Grid event, an HTTP call), produces one of these, and the orchestration
instance id is derived from its ``rollout_id`` alone, so a redelivered input finds the instance it started.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import RequestError
from .policy import format_validation_error, parse_policy
from .resource_id import parse_scale_set_id
from .text import check_name

INSTANCE_PREFIX = "rollout-"

Source = Literal["api", "cli", "pipeline", "http", "service-bus", "azure-devops", "app-configuration",
                 "resource-write"]


def check_scale_set_ids(ids: list[str]) -> list[str]:
    """Refuse anything that is not a scale set's full resource id under ARM's naming rules, and two ids naming
    the same scale set in another case (ARM ids are case-insensitive) (a pydantic validator body)."""
    seen: dict[str, str] = {}
    for t in ids:
        key = parse_scale_set_id(t).key
        if key in seen:
            raise ValueError(f"targets must be distinct: {t!r} names the same scale set as {seen[key]!r} "
                             "(resource ids compare case-insensitively)")
        seen[key] = t
    return ids


def target_keys(ids: list[str]) -> list[str]:
    """The case-insensitive identities of ``ids`` (for leases, dedupe and comparisons)."""
    return [parse_scale_set_id(t).key for t in ids]


class ChangeRequest(BaseModel):
    """The change itself; ``payload`` is opaque to the rollout logic and handed to the Fleet adapter."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    change_id: str = Field(min_length=1, max_length=128, description="Names the change (e.g. a release name).")
    kind: Literal["run-command", "extension", "model-update"] = Field(
        "run-command", description="How the change is applied to a VM.")
    payload: dict[str, Any] = Field(default_factory=dict, description="Script, extension settings or model patch.")
    version: str | None = Field(None, max_length=128, description="Version of the configuration being rolled out.")

    @field_validator("change_id", "version")
    @classmethod
    def _names(cls, v: str | None) -> str | None:
        return v if v is None else check_name(v)


class Origin(BaseModel):
    """Where a request came from: enough to trace it back to its message or event."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    message_id: str | None = Field(None, max_length=256, description="Service Bus message id.")
    event_id: str | None = Field(None, max_length=256, description="Event Grid or service-hook event id.")
    event_type: str | None = Field(None, max_length=256, description="e.g. ms.vss-release.deployment-started-event.")
    deployment_id: str | None = Field(None, max_length=128, description="Azure DevOps release deployment id.")
    subject: str | None = Field(None, max_length=1024, description="Event Grid subject or App Configuration key.")
    correlation_id: str | None = Field(None, max_length=256, description="ARM correlation id, pipeline run, ...")
    details: dict[str, str] = Field(default_factory=dict, description="Other identifying fields, as text.")

    @field_validator("message_id", "event_id", "event_type", "deployment_id", "subject", "correlation_id")
    @classmethod
    def _names(cls, v: str | None) -> str | None:
        return v if v is None else check_name(v)


ChannelKind = Literal["http", "service-bus", "event-grid", "cli", "api", "simulator"]


class Channel(BaseModel):
    """Who or what delivered the request, as the platform vouches for it: never what the body says.

    HTTP: the App Service Authentication principal (or ``anonymous key holder`` in function-key mode); Service
    Bus: the topic and subscription the message came through; Event Grid: the event's source (its topic).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ChannelKind = Field(description="The entry point.")
    identity: str = Field(min_length=1, max_length=512, description="The principal's name, or the entity/topic.")
    principal_id: str | None = Field(None, max_length=128, description="Entra object id of an HTTP principal.")
    authenticated_by: Literal["app-service", "function-key", "service-bus", "event-grid", "local"] = Field(
        "local", description="What vouches for the identity.")

    @field_validator("identity", "principal_id")
    @classmethod
    def _names(cls, v: str | None) -> str | None:
        return v if v is None else check_name(v)


class RolloutRequest(BaseModel):
    """One rollout: which scale sets, which change, which policy overrides, who asked and through what."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={
        "$id": "https://shadow-rollout/schemas/rollout-request.schema.json",
        "title": "RolloutRequest",
    })
    rollout_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
                            description="Unique per rollout; the orchestration instance id is 'rollout-' + this, "
                                        "so a retried request or redelivered message finds the same instance.")
    targets: list[str] = Field(min_length=1, max_length=200,
                               description="Resource ids of the virtual machine scale sets to roll out to.")
    change: ChangeRequest
    policy: dict[str, Any] = Field(default_factory=dict,
                                   description="Overrides of the rollout policy (shared/domain/policy.py).")
    requester: str = Field("unknown", max_length=256, description="Who asked: a user, a pipeline, a service. "
                           "Over HTTP the signed-in principal (a body value is ignored).")
    source: Source = Field("api", description="Which entry point turned its input into this request.")
    origin: Origin = Field(default_factory=Origin)
    channel: Channel | None = Field(None, description="Set by the intake from the platform (a value in a message "
                                                      "or body is replaced).")
    claimed_requester: str | None = Field(None, max_length=256, description="A requester the input claims "
                                          "(a DevOps release's requestedFor, a message's requester): recorded, "
                                          "not vouched for.")

    @field_validator("requester", "claimed_requester")
    @classmethod
    def _names(cls, v: str | None) -> str | None:
        return v if v is None else check_name(v)

    @property
    def instance_id(self) -> str:
        return instance_id_for(self.rollout_id)

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        return check_scale_set_ids(v)

    def requester_identities(self) -> set[str]:
        """Every identity that asked for this rollout (case-folded): none of them may approve it (four eyes)."""
        found = {self.requester, self.claimed_requester}
        if self.channel is not None:
            found |= {self.channel.identity, self.channel.principal_id}
        return {x.casefold() for x in found if x and x != "unknown"}


def parse_request(data: Any) -> RolloutRequest:
    if not isinstance(data, dict):
        raise RequestError(f"request: expected a JSON object (got {type(data).__name__})")
    try:
        req = RolloutRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestError(format_validation_error(exc, "request")) from exc
    parse_policy(req.policy, where="request.policy")
    return req


def instance_id_for(rollout_id: str) -> str:
    """The orchestration instance id of a rollout: derived from its id alone, never random."""
    return f"{INSTANCE_PREFIX}{rollout_id}"


def rollout_id_of(instance_id: str) -> str | None:
    """The rollout id of a rollout instance id (None when the id was not made by :func:`instance_id_for`)."""
    return instance_id[len(INSTANCE_PREFIX):] if instance_id.startswith(INSTANCE_PREFIX) else None


def request_json_schema() -> dict[str, Any]:
    """The JSON Schema published in docs/rollout-request.schema.json."""
    schema = RolloutRequest.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
