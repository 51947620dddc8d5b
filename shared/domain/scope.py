"""Which scale sets a rollout may touch: pure rules over resource ids and tags, with reasons.

A target is in scope when it lies in an allowed subscription or an allowed resource group, and carries every
required tag. An empty scope allows nothing (validated where the configuration is read): a trigger can never
touch a VM outside what an operator wrote down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .resource_id import check_subscription_id, parse_group_id, parse_scale_set_id


class Scope(BaseModel):
    """Where rollouts may act. Ids compare case-insensitively, as ARM's do."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    subscriptions: list[str] = Field(default_factory=list, description="Subscription ids allowed as a whole.")
    resource_groups: list[str] = Field(
        default_factory=list, description="Resource groups allowed, as /subscriptions/<id>/resourceGroups/<name>.")
    tags: dict[str, list[str]] = Field(
        default_factory=dict, description="Tags every target must carry: name -> allowed values.")

    @field_validator("subscriptions")
    @classmethod
    def _subs(cls, v: list[str]) -> list[str]:
        return [check_subscription_id(s) for s in v]

    @field_validator("resource_groups")
    @classmethod
    def _rgs(cls, v: list[str]) -> list[str]:
        return [str(parse_group_id(rg)) for rg in v]

    def allows(self, resource_id: str) -> bool:
        """Whether a scale set lies inside the subscriptions and resource groups (tags aside)."""
        try:
            rid = parse_scale_set_id(resource_id)
        except ValueError:
            return False
        return (rid.subscription.casefold() in {s.casefold() for s in self.subscriptions}
                or rid.group_key in {parse_group_id(r).group_key for r in self.resource_groups})

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, v: object) -> object:
        if isinstance(v, dict):
            return {k: [x] if isinstance(x, str) else x for k, x in v.items()}
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> Scope:
        if not self.subscriptions and not self.resource_groups:
            raise ValueError("scope must name at least one subscription or resource group (an empty scope "
                             "would allow nothing)")
        return self


@dataclass(frozen=True)
class ScopeVerdict:
    allowed: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "all targets in scope"


def _name(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


def check_scope(targets: Sequence[str], scope: Scope,
                tags: Mapping[str, Mapping[str, str]] | None = None) -> ScopeVerdict:
    """Every target must be inside the scope; each one outside is named with why.

    ``tags`` maps lower-cased target ids to their tags; it is needed only when the scope names tags, and a
    target whose tags are unknown is out of scope (fail closed).
    """
    subs = {s.casefold() for s in scope.subscriptions}
    rgs = {parse_group_id(r).group_key for r in scope.resource_groups}
    reasons: list[str] = []
    for target in targets:
        try:
            rid = parse_scale_set_id(target)
        except ValueError as exc:
            reasons.append(f"{target!r}: {exc}")
            continue
        if rid.subscription.casefold() not in subs and rid.group_key not in rgs:
            reasons.append(f"{_name(target)}: subscription {rid.subscription}, resource group {rid.resource_group} "
                           f"is outside the allowed scope ({len(subs)} subscriptions, {len(rgs)} resource groups)")
            continue
        if not scope.tags:
            continue
        have = None if tags is None else (tags.get(rid.key) or tags.get(target.lower()))
        if have is None:
            reasons.append(f"{_name(target)}: its tags could not be read, and the scope requires "
                           + ", ".join(f"{k} in {v}" for k, v in sorted(scope.tags.items())))
            continue
        lowered = {k.lower(): v for k, v in have.items()}
        for key, allowed in sorted(scope.tags.items()):
            value = lowered.get(key.lower())
            if value is None or value not in allowed:
                reasons.append(f"{_name(target)}: tag {key}={value!r} is not one of {allowed}")
    return ScopeVerdict(not reasons, reasons)
