"""The rollout page's pure parts: who sees which button, when a client gets HTML, and that data from the status
cannot break out of the page's script element."""

from __future__ import annotations

import base64
import json
import re

import pytest

from shared.control.page import render, wants_html
from shared.control.roles import EVERY_ROLE, Action, allowed_actions, principal_header, roles_of


def principal(*roles: str, role_typ: str = "roles") -> dict[str, str]:
    body = {"auth_typ": "aad", "role_typ": role_typ,
            "claims": [{"typ": "name", "val": "someone"}, *({"typ": role_typ, "val": r} for r in roles)]}
    return {"X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(body).encode()).decode()}


@pytest.mark.parametrize(("headers", "actions"), [
    ({}, set()),                                                       # a function key only: no buttons
    (principal("Rollout.Request"), set()),
    (principal("Rollout.Operate"), {Action.ABORT}),
    (principal("Rollout.Approve"), {Action.APPROVE}),                 # aborting is Rollout.Operate's (the API's rule)
    (principal("Rollout.Approve", "Rollout.Operate"), {Action.APPROVE, Action.ABORT}),
    (principal("Rollout.Approve", role_typ="http://schemas.microsoft.com/ws/2008/06/identity/claims/role"),
     {Action.APPROVE}),
    ({"x-ms-client-principal": "not base64 json!"}, set()),
])
def test_buttons_follow_the_principals_app_roles(headers: dict[str, str], actions: set[Action]) -> None:
    assert allowed_actions(headers, {"SHADOW_ROLLOUT_AUTH_MODE": "app-service"}) == actions


def test_without_app_service_authentication_a_claimed_principal_gets_no_buttons() -> None:
    assert allowed_actions(principal("Rollout.Approve"), {}) == frozenset()


def test_the_local_operator_holds_every_role() -> None:
    assert roles_of({"x-ms-client-principal": principal_header("local-operator", EVERY_ROLE)}) == EVERY_ROLE


@pytest.mark.parametrize(("accept", "html"), [
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),  # a browser
    ("application/json", False), ("*/*", False), (None, False), ("", False),
    ("application/json, text/html", False),
])
def test_html_only_for_clients_that_ask_for_it_first(accept: str | None, html: bool) -> None:
    assert wants_html(accept) is html


def test_status_data_cannot_close_the_script_element_and_the_page_loads_nothing_external() -> None:
    evil = "</script><script>alert(1)</script>"
    page, headers = render("detail", {"rollout_id": evil, "custom_status": {"reason": evil}},
                           actions=frozenset({Action.ABORT}), title=f"Rollout {evil}")
    assert evil not in page
    data = re.search(r'<script type="application/json" id="status">(.*?)</script>', page, re.S)
    assert data is not None and json.loads(data.group(1))["rollout_id"] == evil
    config = re.search(r'<script type="application/json" id="config">(.*?)</script>', page, re.S)
    assert config is not None and json.loads(config.group(1))["actions"] == ["abort"]
    assert not re.search(r'\b(src|href)="(https?:)?//', page)
    nonce = re.search(r"'nonce-([^']+)'", headers["Content-Security-Policy"])
    assert nonce is not None and page.count(f'nonce="{nonce.group(1)}"') == 2
    assert "default-src 'none'" in headers["Content-Security-Policy"]
