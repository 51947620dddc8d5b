"""``shadow-rollout intake-check``: each line of a JSONL file through exactly the code path of its binding, as a
dry run (an in-memory store, nothing started), and one JSON verdict per line.

Verdicts: ``start`` (a rollout would start), ``duplicate`` (an earlier line already started it), ``rejected``
(with its reason) and ``ignored`` (nothing to start: an event no route names, a report, a read). ``code`` is one of
:data:`CODES`, documented in docs/intake.md; ``internal_error`` exists so that even a bug prints a verdict, never
a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from ..bootstrap import Services
from ..domain.errors import ConfigurationError, InvalidInput
from ..intake import service
from ..intake.config import IntakeConfig, parse_intake_config
from ..intake.limits import load_json
from ..ports import Orchestrations

Kind = Literal["servicebus", "devops", "eventgrid", "http"]
Route = Literal["start", "approve", "abort", "status", "list"]
CODES = ("accepted", "duplicate", "malformed", "unmapped", "out_of_scope", "busy", "unauthenticated", "forbidden",
         "not_found", "conflict", "not_configured", "ignored", "reported", "ok", "internal_error")
NO_CONFIG_NOTE = "no --config: the mapping is empty and scope checks are skipped"
_STATUS_CODES = {400: "malformed", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 409: "conflict",
                 503: "not_configured"}
_DRY_RUN_TOPIC = "intake-check"


def dry_run_services() -> Services:
    """In-memory services over a one-scale-set simulated fleet (tags of real targets are unknown to it, so a
    scope that requires tags fails closed, as it would in Azure when tags cannot be read)."""
    from ..adapters.simulator.scenario import parse_scenario
    from ..adapters.simulator.world import FleetWorld
    from ..adapters.statistical_model import StatisticalFailureModel
    from ..bootstrap import simulator_services

    world = FleetWorld(parse_scenario({"name": "intake-check", "fleet": {"scale_sets": [{"name": "x",
                                                                                          "capacity": 1}]},
                                       "change": {"id": "dry-run"}}))
    return simulator_services(world, model=StatisticalFailureModel())


def load_config(path: Path | None) -> IntakeConfig:
    if path is None:
        return IntakeConfig.unscoped()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read the intake configuration ({exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML/JSON: {str(exc)[:300]}") from exc
    return parse_intake_config(data, where=path.name)


def principal_header(principal: Mapping[str, Any]) -> str:
    """The ``X-MS-CLIENT-PRINCIPAL`` header App Service would inject for ``{"name", "roles", "id"?}``."""
    name, roles = principal.get("name"), principal.get("roles", [])
    if not isinstance(name, str) or not name or not isinstance(roles, list) \
            or not all(isinstance(r, str) for r in roles):
        raise ConfigurationError('--principal must be {"name": "<text>", "roles": ["Rollout.Request", ...]}')
    claims = [{"typ": "name", "val": name}, *({"typ": "roles", "val": r} for r in roles)]
    if isinstance(principal.get("id"), str):
        claims.append({"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier",
                       "val": principal["id"]})
    doc = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def _verdict(result: service.IntakeResult) -> dict[str, Any]:
    if result.outcome in ("started", "queued"):
        return {"verdict": "start", "code": "accepted", "reason": result.reason, "rollout_id": result.rollout_id}
    if result.outcome == "existing":
        return {"verdict": "duplicate", "code": "duplicate", "reason": result.reason, "rollout_id": result.rollout_id}
    if result.outcome == "rejected":
        return {"verdict": "rejected", "code": result.kind or "malformed", "reason": result.reason,
                "rollout_id": result.rollout_id}
    return {"verdict": "ignored", "code": "reported" if result.outcome == "reported" else "ignored",
            "reason": result.reason, "rollout_id": result.rollout_id}


def _reply_verdict(status: int, body: Mapping[str, Any]) -> dict[str, Any]:
    rid = body.get("rollout_id") if isinstance(body.get("rollout_id"), str) else None
    reason = str(body.get("reason") or f"HTTP {status}")
    if 200 <= status < 300:
        return {"verdict": "ignored", "code": "ok", "reason": f"HTTP {status}: nothing would start", "rollout_id": rid}
    code = body.get("code") if body.get("code") in CODES else _STATUS_CODES.get(status, "malformed")
    return {"verdict": "rejected", "code": code, "reason": reason, "rollout_id": rid}


def _malformed(reason: str) -> dict[str, Any]:
    return {"verdict": "rejected", "code": "malformed", "reason": reason, "rollout_id": None}


async def _event_grid(line: bytes, *, orch: Orchestrations, svc: Services, config: IntakeConfig) -> dict[str, Any]:
    """One Event Grid delivery: an event or an array of events; the verdict covers the delivery."""
    try:
        data = load_json(line, "delivery")
    except InvalidInput as exc:
        return _malformed(f"rejected: {exc}")
    events = data if isinstance(data, list) else [data]
    if not events:
        return _malformed("rejected: an empty array holds no event")
    verdicts = []
    for i, ev in enumerate(events):
        if not isinstance(ev, dict):
            verdicts.append(_malformed(f"rejected: event [{i}] is not an object"))
            continue
        fields = {k: ev.get(k) for k in ("id", "eventType", "subject", "topic")}
        bad = [k for k, v in fields.items() if v is not None and not isinstance(v, str)]
        if bad or not isinstance(fields["id"], str) or not isinstance(fields["eventType"], str):
            verdicts.append(_malformed(f"rejected: event [{i}]: id and eventType must be text"
                                       f"{' (' + ', '.join(bad) + ' are not)' if bad else ''}"))
            continue
        result = await service.from_event_grid(
            event_id=fields["id"], event_type=fields["eventType"], subject=fields["subject"] or "",
            topic=fields["topic"] or "", data=ev.get("data"), orch=orch, svc=svc, config=config)
        verdicts.append(_verdict(result))
    order = ("rejected", "start", "duplicate", "ignored")
    head = min(verdicts, key=lambda v: order.index(v["verdict"]))
    if len(verdicts) == 1:
        return head
    return {**head, "reason": f"{len(verdicts)} events; first {head['verdict']}: {head['reason']}",
            "events": verdicts}


async def check_line(line: bytes, *, kind: Kind, route: Route, headers: Mapping[str, str],
                     orch: Orchestrations, svc: Services, config: IntakeConfig) -> dict[str, Any]:
    from ..control import routes

    environ = {"SHADOW_ROLLOUT_AUTH_MODE": "app-service"}
    if kind in ("servicebus", "devops"):
        result = await service.from_service_bus(line, message_id=None, orch=orch, svc=svc, config=config,
                                                topic=_DRY_RUN_TOPIC, subscription=_DRY_RUN_TOPIC)
        return _verdict(result)
    if kind == "eventgrid":
        return await _event_grid(line, orch=orch, svc=svc, config=config)
    if route == "start":
        return _verdict(await routes.start(headers, line, orch=orch, svc=svc, config=config, environ=environ))
    try:
        data = load_json(line, "line")
    except InvalidInput as exc:
        return _malformed(f"rejected: {exc}")
    if not isinstance(data, dict):
        return _malformed('rejected: a line for this route is an object: {"rollout_id": ..., "body": ...} '
                          '(approve, abort, status) or the query parameters (list)')
    if route == "list":
        params = {k: v for k, v in data.items()}
        reply = await routes.list_rollouts(headers, params, orch=orch, svc=svc, environ=environ)
    elif route == "status":
        reply = await routes.status(headers, data.get("rollout_id"), orch=orch, svc=svc, environ=environ)
    else:
        body = data.get("body")
        raw = b"" if body is None else json.dumps(body).encode()
        act = routes.approve if route == "approve" else routes.abort
        reply = await act(headers, raw, data.get("rollout_id"), orch=orch, svc=svc, environ=environ)
    return _reply_verdict(reply.status, reply.body)


def lines_of(data: bytes) -> list[bytes]:
    """Every line is one input (an empty line too); a final newline does not make one more."""
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return [p[:-1] if p.endswith(b"\r") else p for p in parts]


def run(data: bytes, *, kind: Kind, route: Route = "start", principal: Mapping[str, Any] | None = None,
        config: IntakeConfig | None = None) -> Iterator[dict[str, Any]]:
    """A verdict per line of ``data``, in order."""
    cfg = config if config is not None else IntakeConfig.unscoped()
    headers = {"X-MS-CLIENT-PRINCIPAL": principal_header(principal)} if principal is not None else {}
    svc = dry_run_services()
    from ..adapters.dry_run_orchestrations import DryRunOrchestrations

    orch = DryRunOrchestrations()

    async def one(line: bytes) -> dict[str, Any]:
        try:
            verdict = await check_line(line, kind=kind, route=route, headers=headers, orch=orch, svc=svc, config=cfg)
        except Exception as exc:
            verdict = {"verdict": "rejected", "code": "internal_error",
                       "reason": f"internal error ({type(exc).__name__}): please report it", "rollout_id": None}
        if config is None:
            verdict["note"] = NO_CONFIG_NOTE
        return verdict

    loop = asyncio.new_event_loop()
    try:
        for line in lines_of(data):
            yield loop.run_until_complete(one(line))
    finally:
        loop.close()
