"""Who may press Approve and Abort on the rollout page: one small function, to be replaced by the Entra app
roles of the control API (Rollout.Approve, Rollout.Operate) when they land.

The signed-in principal comes from App Service authentication's ``X-MS-CLIENT-PRINCIPAL`` header: base64 JSON
with ``claims`` (``typ``/``val``) and ``role_typ`` naming the claim type of roles ("Access user claims in app
code", learn.microsoft.com/azure/app-service/configure-authentication-user-identities). A caller without a
principal (a function key only) is shown no buttons: least privilege; the API itself still decides.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from enum import StrEnum

PRINCIPAL_HEADER = "x-ms-client-principal"
ROLE_CLAIMS = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")


class Action(StrEnum):
    APPROVE = "approve"
    ABORT = "abort"


ROLES_FOR: dict[Action, frozenset[str]] = {
    Action.APPROVE: frozenset({"Rollout.Approve"}),
    Action.ABORT: frozenset({"Rollout.Approve", "Rollout.Operate"}),
}
EVERY_ROLE = frozenset({"Rollout.Request", "Rollout.Approve", "Rollout.Operate"})


def roles_of(headers: Mapping[str, str]) -> frozenset[str]:
    """The app roles of the signed-in principal (none when there is no principal or it cannot be read)."""
    raw = next((v for k, v in headers.items() if k.lower() == PRINCIPAL_HEADER), None)
    if not raw:
        return frozenset()
    try:
        principal = json.loads(base64.b64decode(raw, validate=False))
    except (ValueError, binascii.Error):
        return frozenset()
    if not isinstance(principal, dict):
        return frozenset()
    role_typ = principal.get("role_typ")
    types = {*ROLE_CLAIMS, role_typ} if isinstance(role_typ, str) else set(ROLE_CLAIMS)
    return frozenset(str(c.get("val")) for c in principal.get("claims", [])
                     if isinstance(c, dict) and c.get("typ") in types and c.get("val"))


def allowed_actions(headers: Mapping[str, str]) -> frozenset[Action]:
    """The page's buttons this caller may see."""
    roles = roles_of(headers)
    return frozenset(a for a, need in ROLES_FOR.items() if roles & need)


def principal_header(name: str, roles: frozenset[str]) -> str:
    """An ``X-MS-CLIENT-PRINCIPAL`` value (what the local server presents for its local operator)."""
    body = {"auth_typ": "local", "name_typ": "name", "role_typ": "roles",
            "claims": [{"typ": "name", "val": name}, *({"typ": "roles", "val": r} for r in sorted(roles))]}
    return base64.b64encode(json.dumps(body).encode()).decode()
