"""Which scale sets a rollout may touch: pure rules over resource ids and tags, with reasons.

A target is in scope when it lies in an allowed subscription or an allowed resource group, and carries every
required tag. An empty scope allows nothing (validated where the configuration is read): a trigger can never
touch a VM outside what an operator wrote down.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ID = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/", re.IGNORECASE)
_RG = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+$", re.IGNORECASE)


class Scope(BaseModel):
    """Where rollouts may act. Ids compare case-insensitively, as ARM's do."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    subscriptions: list[str] = Field(default_factory=list, description="Subscription ids allowed as a whole.")
    resource_groups: list[str] = Field(
        default_factory=list, description="Resource groups allowed, as /subscriptions/<id>/resourceGroups/<name>.")
    tags: dict[str, list[str]] = Field(
        default_factory=dict, description="Tags every target must carry: name -> allowed values.")

    @field_validator("resource_groups")
    @classmethod
    def _rgs(cls, v: list[str]) -> list[str]:
        for rg in v:
            if not _RG.match(rg.rstrip("/")):
                raise ValueError(f"not a resource group id (/subscriptions/<id>/resourceGroups/<name>): {rg!r}")
        return [rg.rstrip("/") for rg in v]

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
    subs = {s.lower() for s in scope.subscriptions}
    rgs = {r.lower() for r in scope.resource_groups}
    reasons: list[str] = []
    for target in targets:
        m = _ID.match(target)
        if m is None:
            reasons.append(f"{target}: not an Azure resource id")
            continue
        sub, rg = m["sub"].lower(), f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}".lower()
        if sub not in subs and rg not in rgs:
            reasons.append(f"{_name(target)}: subscription {m['sub']}, resource group {m['rg']} is outside the "
                           f"allowed scope ({len(subs)} subscriptions, {len(rgs)} resource groups)")
            continue
        if not scope.tags:
            continue
        have = None if tags is None else tags.get(target.lower())
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
