"""``shadow-rollout status|watch|approve|abort|list --app URL``: the control API of a deployed app (or of
``simulate --serve``) from a terminal.

Authentication, in this order: a function key (``--function-key`` or SHADOW_ROLLOUT_FUNCTION_KEY, sent as
``x-functions-key``); an Entra ID token for ``--scope`` (SHADOW_ROLLOUT_APP_SCOPE, e.g. ``api://<app id>/.default``)
from azure-identity's DefaultAzureCredential, sent as a bearer token; otherwise none (the local server).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote
from urllib.request import Request, urlopen

import typer
from rich.table import Table

from .consoles import console

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

err = console(stderr=True)
out = console()

# production is done once the last wave is checked (the watch only restores failing VMs), or it never will be
PRODUCTION_DONE = {"watch", "done"}
ENDED_BEFORE = {"halted_before_production", "halted_in_production", "aborted", "refused", "failed"}
TERMINAL = {"Completed", "Failed", "Terminated"}

AppOpt = Annotated[str, typer.Option("--app", envvar="SHADOW_ROLLOUT_APP_URL",
                                     help="The function app's URL (https://<name>.azurewebsites.net) or the "
                                          "local server's (http://127.0.0.1:7071).")]
KeyOpt = Annotated[str | None, typer.Option("--function-key", envvar="SHADOW_ROLLOUT_FUNCTION_KEY",
                                            help="A function key (sent as x-functions-key).")]
ScopeOpt = Annotated[str | None, typer.Option("--scope", envvar="SHADOW_ROLLOUT_APP_SCOPE",
                                              help="Entra ID scope of the app, e.g. api://<app id>/.default; a "
                                                   "token comes from DefaultAzureCredential.")]
JsonOpt = Annotated[bool, typer.Option("--json", metavar="", help="Print the JSON reply on stdout.")]
ReasonOpt = Annotated[str | None, typer.Option(help="Why (recorded with the decision).")]


class AppError(Exception):
    """The app could not be reached or refused the call; the message says which and why."""


@dataclass(frozen=True)
class AppClient:
    base: str
    function_key: str | None = None
    scope: str | None = None

    @classmethod
    def of(cls, app_url: str, function_key: str | None, scope: str | None) -> AppClient:
        base = app_url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise AppError(f"--app must be an http(s) URL (got {app_url!r})")
        return cls(base if base.endswith("/api") else base + "/api", function_key, scope)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.function_key:
            headers["x-functions-key"] = self.function_key
        elif self.scope:
            from azure.core.exceptions import ClientAuthenticationError

            try:
                token = self._credential.get_token(self.scope).token
            except ClientAuthenticationError as exc:  # CredentialUnavailableError too: no identity found at all
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                raise AppError(f"no Entra ID token for {self.scope}: {first}") from None
            if not token:
                raise AppError(f"no Entra ID token for {self.scope}: the credential returned an empty token")
            headers["Authorization"] = f"Bearer {token}"
        return headers

    @cached_property
    def _credential(self) -> TokenCredential:
        """One credential per client, so that `watch` reuses its cached token across polls."""
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        url = f"{self.base}/{path}"
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        req = Request(url, data=data, method=method, headers=self._headers())
        try:
            with urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except HTTPError as exc:
            raw = exc.read()
            try:
                reply = json.loads(raw) if raw else {}
            except ValueError:
                reply = {"reason": raw.decode(errors="replace")[:300]}
            if exc.code == 401:
                reply.setdefault("reason", "unauthorized: give --function-key or --scope")
            return exc.code, reply if isinstance(reply, dict) else {"reply": reply}
        except (URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AppError(f"cannot reach {url}: {reason}") from None


def _client(app_url: str, function_key: str | None, scope: str | None) -> AppClient:
    try:
        return AppClient.of(app_url, function_key, scope)
    except AppError as exc:
        _fail(str(exc))
        raise


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _call(client: AppClient, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    try:
        return client.call(method, path, body)
    except AppError as exc:
        _fail(str(exc), 1)
        raise


def _get(client: AppClient, path: str, as_json: bool = False) -> dict[str, Any] | None:
    """GET a route; a refusal fails the command with its reason (exit 1). With ``as_json`` the reply is printed as
    is and None returned: the caller has nothing left to show."""
    code, body = _call(client, "GET", path)
    if code != 200:
        _fail(f"{code}: {body.get('reason', body)}", 1)
    if as_json:
        sys.stdout.write(json.dumps(body) + "\n")
        return None
    return body


def status(rollout_id: Annotated[str, typer.Argument(help="The rollout's id.")], app_url: AppOpt,
           function_key: KeyOpt = None, scope: ScopeOpt = None, as_json: JsonOpt = False) -> None:
    """Show where a rollout stands: phase, waves, approval, rollbacks."""
    body = _get(_client(app_url, function_key, scope), f"rollouts/{quote(rollout_id, safe='')}", as_json)
    if body is not None:
        out.print(describe(body), highlight=False)


def describe(body: dict[str, Any]) -> str:
    """One line of where a rollout stands."""
    cs = body.get("custom_status") or {}
    parts = [f"{body.get('rollout_id')}: {body.get('phase') or 'pending'} ({body.get('runtime_status')})"]
    if cs.get("waves"):
        parts.append(f"wave {cs.get('wave', 0)}/{cs['waves']}, {cs.get('waves_done', 0)} done")
    if cs.get("rollbacks"):
        parts.append(f"{cs['rollbacks']} rolled back")
    if cs.get("error"):
        parts.append(f"error: {cs['error']}")
    approval = cs.get("approval") or {}
    if approval.get("outcome"):
        parts.append(f"approval {approval['outcome']}")
    elif body.get("phase") == "awaiting_approval":
        parts.append(f"awaiting approval until {approval.get('timeout_at')}")
    return " · ".join(parts)


def list_(app_url: AppOpt, function_key: KeyOpt = None, scope: ScopeOpt = None, as_json: JsonOpt = False,
          limit: Annotated[int, typer.Option(help="At most this many.")] = 50) -> None:
    """List recent rollouts, newest first."""
    body = _get(_client(app_url, function_key, scope), f"rollouts?limit={limit}", as_json)
    if body is None:
        return
    table = Table(title=f"{body.get('count', 0)} rollouts")
    for col in ("rollout", "phase", "runtime", "created", "updated"):
        table.add_column(col, overflow="fold")
    for r in body.get("rollouts", []):
        table.add_row(r["rollout_id"], str(r.get("phase")), str(r.get("runtime_status")), str(r.get("created_at")),
                      str(r.get("last_updated_at")))
    out.print(table)


def _act(action: str, rollout_id: str, app_url: str, function_key: str | None, scope: str | None,
         reason: str | None) -> None:
    client = _client(app_url, function_key, scope)
    code, body = _call(client, "POST", f"rollouts/{quote(rollout_id, safe='')}/{action}", {"reason": reason})
    if code != 202:
        _fail(f"{action} refused ({code}): {body.get('reason', body)}", 1)
    out.print(body.get("reason", f"{action} sent"), highlight=False)


def approve(rollout_id: Annotated[str, typer.Argument(help="The rollout's id.")], app_url: AppOpt,
            function_key: KeyOpt = None, scope: ScopeOpt = None, reason: ReasonOpt = None) -> None:
    """Approve a rollout waiting at its approval gate."""
    _act("approve", rollout_id, app_url, function_key, scope, reason)


def abort(rollout_id: Annotated[str, typer.Argument(help="The rollout's id.")], app_url: AppOpt,
          function_key: KeyOpt = None, scope: ScopeOpt = None, reason: ReasonOpt = None) -> None:
    """Abort a running rollout before it changes another VM."""
    _act("abort", rollout_id, app_url, function_key, scope, reason)


def watch(rollout_id: Annotated[str, typer.Argument(help="The rollout's id.")], app_url: AppOpt,
          function_key: KeyOpt = None, scope: ScopeOpt = None,
          interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 10.0,
          timeout_minutes: Annotated[float, typer.Option(help="Give up after this long (exit 3).")] = 360.0) -> None:
    """Follow a rollout until production is done (exit 0), or it ends before (exit 1)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    client = _client(app_url, function_key, scope)
    deadline = time.monotonic() + 60 * timeout_minutes
    seen = ""
    with Progress(TextColumn("[bold]{task.fields[phase]}[/]"), BarColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=err, transient=False) as progress:
        task = progress.add_task("", total=100, phase="…")
        while True:
            body = _get(client, f"rollouts/{quote(rollout_id, safe='')}")
            assert body is not None  # not --json: always the reply
            phase = body.get("phase") or "pending"
            line = describe(body)
            progress.update(task, completed=round(100 * progress_of(body)), phase=phase, description=line)
            if line != seen:
                seen = line
            state = production_state(body)
            if state == "done":
                progress.update(task, completed=100)
                break
            if state == "ended":
                progress.stop()
                out.print(line, highlight=False)
                raise typer.Exit(1)
            if time.monotonic() > deadline:
                progress.stop()
                _fail(f"gave up after {timeout_minutes:g} minutes at {line}", 3)
            time.sleep(interval)
    out.print(f"production done: {seen}", highlight=False)


def production_state(body: dict[str, Any]) -> str | None:
    """"done" once every wave ran and was checked, "ended" if it never will, else None (still on its way).

    A rollout that failed during the waves is watched too (its changed VMs are not abandoned), so its phase is
    "watch" as well: its error, not its phase, says production was not done.
    """
    phase = body.get("phase") or "pending"
    error = (body.get("custom_status") or {}).get("error")
    if phase in PRODUCTION_DONE and not error:
        return "done"
    if phase in PRODUCTION_DONE or phase in ENDED_BEFORE or body.get("runtime_status") in TERMINAL:
        return "ended"
    return None


STEPS = ["inventory", "shadow_pool", "baseline", "apply_to_shadows", "bake", "decided", "awaiting_approval",
         "production", "watch"]


def progress_of(body: dict[str, Any]) -> float:
    """How far towards production done (0 to 1), from the phase and the waves done."""
    phase = body.get("phase") or "inventory"
    if phase in PRODUCTION_DONE:
        return 1.0
    if phase not in STEPS:
        return 0.0
    cs = body.get("custom_status") or {}
    f = STEPS.index(phase) / (len(STEPS) - 1)
    if phase == "production" and cs.get("waves"):
        f += (cs.get("waves_done") or 0) / cs["waves"] / (len(STEPS) - 1)
    return min(f, 1.0)


def register(app: typer.Typer) -> None:
    for name, fn in (("status", status), ("watch", watch), ("approve", approve), ("abort", abort),
                     ("list", list_)):
        app.command(name)(fn)
