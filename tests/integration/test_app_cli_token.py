"""``--scope``: the app CLI asks azure-identity for a token for the app's scope and sends it as a bearer token.

The app is a local HTTP server that checks the Authorization header as App Service authentication would (a
missing or wrong bearer token is a 401); DefaultAzureCredential is replaced by credentials that need no cloud
and implement azure-core's TokenCredential protocol for real (``get_token(*scopes) -> AccessToken``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import azure.identity
import pytest
from azure.core.credentials import AccessToken
from azure.identity import CredentialUnavailableError
from typer.testing import CliRunner

from shared.cli import app

TOKEN = "eyJ0eXAiOiJKV1QifQ.local.token"
SCOPE = "api://00000000-0000-4000-8000-0000000000a1/.default"
ROLLOUT = {"rollout_id": "r1", "phase": "bake", "runtime_status": "Running", "custom_status": {}}


class StaticCredential:
    """A token credential with one fixed token; records the scopes it was asked for."""

    requested: ClassVar[list[tuple[str, ...]]] = []

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        StaticCredential.requested.append(scopes)
        return AccessToken(TOKEN, int(time.time()) + 3600)


class NoIdentity:
    """What DefaultAzureCredential does on a machine with no identity: CredentialUnavailableError."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise CredentialUnavailableError(
            "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
            "Attempted credentials:\n\tEnvironmentCredential: EnvironmentCredential authentication unavailable.")


class _App(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str | None]]] = []

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _authorised(self) -> bool:
        _App.seen.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                          "key": self.headers.get("x-functions-key")})
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        self._reply(401, {})
        return False

    def do_GET(self) -> None:
        if not self._authorised():
            return
        if self.path == "/api/rollouts/r1":
            self._reply(200, ROLLOUT)
        elif self.path.startswith("/api/rollouts?"):
            self._reply(200, {"count": 1, "rollouts": [{**ROLLOUT, "created_at": "t0", "last_updated_at": "t1"}]})
        else:
            self._reply(404, {"reason": "no such route"})

    def do_POST(self) -> None:
        if self._authorised():
            self._reply(202, {"reason": "approve sent"})

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def app_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _App.seen.clear()
    StaticCredential.requested.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_scope_sends_the_credentials_token_for_that_scope_as_a_bearer(app_url: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", StaticCredential)
    runner = CliRunner()
    r = runner.invoke(app, ["status", "r1", "--app", app_url, "--scope", SCOPE, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == ROLLOUT
    r = runner.invoke(app, ["approve", "r1", "--app", app_url, "--reason", "clean"],
                      env={"SHADOW_ROLLOUT_APP_SCOPE": SCOPE})
    assert r.exit_code == 0 and "approve sent" in r.stdout, r.output
    assert StaticCredential.requested == [(SCOPE,), (SCOPE,)]
    assert [s["authorization"] for s in _App.seen] == [f"Bearer {TOKEN}"] * 2
    assert [s["path"] for s in _App.seen] == ["/api/rollouts/r1", "/api/rollouts/r1/approve"]


def test_a_function_key_is_sent_instead_of_a_token_when_both_are_given(app_url: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", StaticCredential)
    r = CliRunner().invoke(app, ["list", "--app", app_url, "--function-key", "k1", "--scope", SCOPE])
    # the stand-in app checks only bearer tokens: the key alone is refused, and no token was asked for
    assert r.exit_code == 1 and "401" in r.stderr and "unauthorized" in r.stderr, r.output
    assert StaticCredential.requested == [] and _App.seen[0]["key"] == "k1" and _App.seen[0]["authorization"] is None


def test_no_identity_is_one_clear_line_and_nothing_is_sent(app_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", NoIdentity)
    r = CliRunner().invoke(app, ["status", "r1", "--app", app_url, "--scope", SCOPE])
    assert r.exit_code == 1
    assert r.stderr.strip() == (f"error: no Entra ID token for {SCOPE}: DefaultAzureCredential failed to retrieve a "
                                "token from the included credentials.")
    assert _App.seen == []  # the request never left without its token


def test_without_key_or_scope_the_app_answers_401_and_the_cli_says_what_to_give(app_url: str) -> None:
    r = CliRunner().invoke(app, ["status", "r1", "--app", app_url], env={"SHADOW_ROLLOUT_APP_SCOPE": None})
    assert r.exit_code == 1 and "401: unauthorized: give --function-key or --scope" in r.stderr, r.output
