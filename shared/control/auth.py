"""Who is calling the HTTP routes, and what they may do.

Identity comes only from the platform. With App Service Authentication on (``SHADOW_ROLLOUT_AUTH_MODE=app-service``,
set by infra next to ``authsettingsV2``) the caller is the ``X-MS-CLIENT-PRINCIPAL`` header: a Base64-encoded JSON
document ``{"auth_typ", "claims": [{"typ", "val"}], "name_typ", "role_typ"}`` that App Service injects and that
"external requests aren't allowed to set" (https://learn.microsoft.com/azure/app-service/configure-authentication-user-
identities, "Access user claims in app code" and "Decoding the client principal header"). When the app does not
know that authentication is on, the same header could come from anyone, so it is never read:

- ``function-key``: the function key is the only credential; every caller is recorded as ``anonymous key holder``
  and holds every role (so four eyes can only be met across channels, e.g. a Service Bus request approved over HTTP).
- unset (or anything else): the control routes refuse (401) and say which setting to set.

App roles (defined on the app registration by infra, granted in Entra ID, docs/deploy.md) decide the actions:
``Rollout.Request`` starts, ``Rollout.Approve`` approves, ``Rollout.Operate`` aborts; any of the three reads.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..domain.request import Channel
from ..domain.text import bad_text

AUTH_MODE_SETTING = "SHADOW_ROLLOUT_AUTH_MODE"
PRINCIPAL_HEADER = "x-ms-client-principal"
ANONYMOUS = "anonymous key holder"
MAX_PRINCIPAL_HEADER = 16 * 1024
_OID = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
_NAMES = ("name", "preferred_username", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
          "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "appid", "azp")
_ROLE_TYPES = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")


class Role(StrEnum):
    REQUEST = "Rollout.Request"
    APPROVE = "Rollout.Approve"
    OPERATE = "Rollout.Operate"


class Action(StrEnum):
    START = "start"
    APPROVE = "approve"
    ABORT = "abort"
    READ = "read"


REQUIRED: dict[Action, frozenset[Role]] = {
    Action.START: frozenset({Role.REQUEST}), Action.APPROVE: frozenset({Role.APPROVE}),
    Action.ABORT: frozenset({Role.OPERATE}), Action.READ: frozenset(Role),
}


class Principal(BaseModel):
    """A caller the platform vouches for (or the anonymous key holder of function-key mode)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=256)
    principal_id: str | None = Field(None, max_length=128)
    roles: frozenset[str] = frozenset()
    authenticated_by: Literal["app-service", "function-key", "local"] = "app-service"

    def may(self, action: Action) -> bool:
        return bool(REQUIRED[action] & self.roles)

    def identities(self) -> set[str]:
        return {x.casefold() for x in (self.name, self.principal_id) if x}

    def channel(self) -> Channel:
        return Channel(kind="http", identity=self.name, principal_id=self.principal_id,
                       authenticated_by=self.authenticated_by)

    def event(self) -> dict[str, Any]:
        """How the actor is recorded in an approve or abort event."""
        return {"by": self.name, "by_id": self.principal_id, "authenticated_by": self.authenticated_by}


KEY_HOLDER = Principal(name=ANONYMOUS, roles=frozenset(Role), authenticated_by="function-key")


class Refusal(BaseModel):
    """Why a caller is refused: HTTP status, a closed code and the reason."""

    model_config = ConfigDict(frozen=True)
    status: int
    code: Literal["unauthenticated", "forbidden"]
    reason: str


def auth_mode(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    mode = env.get(AUTH_MODE_SETTING)
    return mode if mode in ("app-service", "function-key") else None


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value or len(value) > 256 or bad_text(value):
        return None
    return value


def parse_client_principal(header: str) -> Principal | Refusal:
    """The principal of an ``X-MS-CLIENT-PRINCIPAL`` header, or why it cannot be read."""
    bad = Refusal(status=401, code="unauthenticated", reason="the X-MS-CLIENT-PRINCIPAL header cannot be read")
    if len(header) > MAX_PRINCIPAL_HEADER:
        return bad
    try:
        doc = json.loads(base64.b64decode(header, validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError):
        return bad
    if not isinstance(doc, dict) or not isinstance(doc.get("claims"), list):
        return bad
    name_typ = doc.get("name_typ") if isinstance(doc.get("name_typ"), str) else None
    role_typ = doc.get("role_typ") if isinstance(doc.get("role_typ"), str) else None
    claims: dict[str, list[str]] = {}
    for c in doc["claims"][:500]:
        if isinstance(c, dict) and isinstance(c.get("typ"), str) and _text(c.get("val")) is not None:
            claims.setdefault(c["typ"], []).append(c["val"])
    oid = next((claims[t][0] for t in _OID if t in claims), None)
    name = next((claims[t][0] for t in ((name_typ,) if name_typ else ()) + _NAMES if t in claims), None) or oid
    if name is None:
        return Refusal(status=401, code="unauthenticated",
                       reason="the signed-in principal carries no name, object id or application id")
    roles = frozenset(r for t in ((role_typ,) if role_typ else ()) + _ROLE_TYPES for r in claims.get(t, []))
    return Principal(name=name, principal_id=oid, roles=roles, authenticated_by="app-service")


def caller(headers: Mapping[str, str], environ: Mapping[str, str] | None = None) -> Principal | Refusal:
    """The caller of an HTTP route under the configured mode (headers looked up case-insensitively)."""
    mode = auth_mode(environ)
    if mode == "function-key":
        return KEY_HOLDER
    if mode is None:
        return Refusal(status=401, code="unauthenticated",
                       reason=f"authentication is not configured: set {AUTH_MODE_SETTING} to 'app-service' (App "
                              "Service Authentication on, see docs/deploy.md) or 'function-key'")
    lowered = {k.lower(): v for k, v in headers.items()}
    header = lowered.get(PRINCIPAL_HEADER)
    if not header:
        return Refusal(status=401, code="unauthenticated", reason="not signed in: no X-MS-CLIENT-PRINCIPAL header "
                       "(App Service Authentication must require sign-in on this app)")
    return parse_client_principal(header)


def authorise(principal: Principal, action: Action) -> Refusal | None:
    """None when the principal holds a role that allows ``action``, else a 403 naming the roles needed."""
    if principal.may(action):
        return None
    need = " or ".join(sorted(REQUIRED[action]))
    return Refusal(status=403, code="forbidden", reason=f"{principal.name} may not {action.value}: it needs the "
                   f"app role {need} (has {', '.join(sorted(principal.roles)) or 'none'})")


def four_eyes(principal: Principal, requester_identities: set[str]) -> Refusal | None:
    """The approver may be neither the requester nor the identity the request came through."""
    same = principal.identities() & requester_identities
    if not same:
        return None
    return Refusal(status=403, code="forbidden", reason=f"four eyes: {principal.name} asked for this rollout "
                   f"(as {sorted(same)[0]}) and may not approve it; policy four_eyes is on")
