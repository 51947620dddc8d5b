"""Infra turns App Service Authentication on (authsettingsV2) with the app roles the code checks, and tells the
code so (SHADOW_ROLLOUT_AUTH_MODE), or leaves both off together (function-key mode)."""

from __future__ import annotations

import json

import yaml

from shared.control.auth import AUTH_MODE_SETTING, Role

from .bicep import INFRA, MAIN, ROOT, parse


def test_authsettings_v2_requires_sign_in_and_returns_401_to_anonymous_callers() -> None:
    auth = parse(INFRA / "modules/function-app.bicep")["resources"]["auth"]
    assert auth["type"] == "Microsoft.Web/sites/config"
    body = auth["config"]["config"]
    assert body["name"] == "authsettingsV2"
    assert body["properties"]["globalValidation"]["requireAuthentication"] is True
    assert body["properties"]["globalValidation"]["unauthenticatedClientAction"] == "Return401"
    aad = body["properties"]["identityProviders"]["azureActiveDirectory"]
    assert aad["enabled"] is True and aad["registration"]["clientId"] == "authClientId"
    assert "condition" in auth["config"]  # deployed exactly when an app registration exists


def test_the_auth_mode_setting_follows_the_app_registration() -> None:
    text = MAIN.read_text(encoding="utf-8")
    assert f"{AUTH_MODE_SETTING}: empty(authClientId) ? 'function-key' : 'app-service'" in text
    assert "authClientId: authClientId" in text


def test_the_app_roles_are_the_ones_the_code_checks_with_distinct_ids() -> None:
    roles = json.loads((INFRA / "app-roles.json").read_text(encoding="utf-8"))
    assert {r["value"] for r in roles} == {r.value for r in Role}
    assert len({r["id"] for r in roles}) == len(roles) and all(r["isEnabled"] for r in roles)
    hooks = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))["hooks"]
    assert hooks["preprovision"]["posix"]["run"] == "./infra/scripts/register-app.sh"
    assert (ROOT / "infra/scripts/register-app.sh").stat().st_mode & 0o111
