"""Who may press Approve and Abort on the rollout page: the control API's own rule (:mod:`.auth`), asked per
button, so the page never offers what the API would refuse. A caller the API cannot identify sees no buttons."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from enum import StrEnum

from . import auth


class Action(StrEnum):
    APPROVE = "approve"
    ABORT = "abort"


_AUTH_ACTION = {Action.APPROVE: auth.Action.APPROVE, Action.ABORT: auth.Action.ABORT}


def allowed_actions(headers: Mapping[str, str], environ: Mapping[str, str] | None = None) -> frozenset[Action]:
    """The page's buttons this caller may see (four eyes is checked by the API when the button is pressed)."""
    who = auth.caller(headers, environ)
    if isinstance(who, auth.Refusal):
        return frozenset()
    return frozenset(a for a, act in _AUTH_ACTION.items() if auth.authorise(who, act) is None)


EVERY_ROLE = frozenset(r.value for r in auth.Role)


def roles_of(headers: Mapping[str, str]) -> frozenset[str]:
    """The app roles of the signed-in principal (none when there is no principal or it cannot be read)."""
    raw = next((v for k, v in headers.items() if k.lower() == auth.PRINCIPAL_HEADER), None)
    if not raw:
        return frozenset()
    who = auth.parse_client_principal(raw)
    return frozenset() if isinstance(who, auth.Refusal) else who.roles


def principal_header(name: str, roles: frozenset[str]) -> str:
    """An ``X-MS-CLIENT-PRINCIPAL`` value (what the local server presents for its local operator)."""
    body = {"auth_typ": "local", "name_typ": "name", "role_typ": "roles",
            "claims": [{"typ": "name", "val": name}, *({"typ": "roles", "val": r} for r in sorted(roles))]}
    return base64.b64encode(json.dumps(body).encode()).decode()
