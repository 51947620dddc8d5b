"""The ``intake-check`` command (registered on the ``shadow-rollout`` app by shared/cli.py)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..domain.errors import ConfigurationError


class KindOption(StrEnum):
    servicebus = "servicebus"
    devops = "devops"
    eventgrid = "eventgrid"
    http = "http"


class RouteOption(StrEnum):
    start = "start"
    approve = "approve"
    abort = "abort"
    status = "status"
    list = "list"


def intake_check(
    kind: Annotated[KindOption, typer.Option("--kind", help="Which binding: servicebus (the project's own "
                                             "request), devops (a service hook on Service Bus), eventgrid, http.")],
    jsonl: Annotated[Path, typer.Option("--jsonl", help="One input per line (an Event Grid line may hold an "
                                        "array of events).")],
    route: Annotated[RouteOption, typer.Option("--route", help="The HTTP route (http only).")] = RouteOption.start,
    principal: Annotated[str | None, typer.Option("--principal", help='The signed-in caller for http: '
                                                  '{"name": ..., "roles": [...]}.')] = None,
    config: Annotated[Path | None, typer.Option("--config", help="The intake configuration (YAML or JSON); "
                                                "without it the mapping is empty and scope is not checked.")] = None,
) -> None:
    """Dry-run inputs through the intake exactly as the bindings would: one JSON verdict per line, nothing
    started. Codes are listed in docs/intake.md."""
    from .check import load_config, run

    def fail(message: str) -> None:
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2)

    who: dict[str, Any] | None = None
    if principal is not None:
        try:
            parsed = json.loads(principal)
        except ValueError:
            fail('--principal is not JSON; expected {"name": ..., "roles": [...]}')
        if not isinstance(parsed, dict):
            fail('--principal must be a JSON object: {"name": ..., "roles": [...]}')
        who = parsed
    try:
        cfg = load_config(config) if config is not None else None
        data = jsonl.read_bytes()
    except ConfigurationError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{jsonl}: cannot read ({exc.strerror})")
    try:
        for verdict in run(data, kind=kind.value, route=route.value, principal=who, config=cfg):
            sys.stdout.write(json.dumps(verdict, ensure_ascii=True, default=str) + "\n")
    except ConfigurationError as exc:
        fail(str(exc))


def register(app: typer.Typer) -> None:
    app.command("intake-check")(intake_check)
