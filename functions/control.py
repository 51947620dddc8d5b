"""HTTP bindings (function-level auth): start a rollout, list rollouts, get one's status, approve, abort.

Each maps the request to a handler in shared.intake.service or shared.control.api and the handler's reply to
an HTTP response; nothing else happens here.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared.bootstrap import orchestrations, services
from shared.control import api, page
from shared.control.roles import allowed_actions
from shared.domain.errors import ConfigurationError
from shared.intake import service
from shared.intake.config import load_intake_config

bp = df.Blueprint()
AUTH = func.AuthLevel.FUNCTION
PRINCIPAL_HEADER = "x-ms-client-principal-name"  # set by App Service authentication when it is enabled


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json",
                             headers=headers)


def _reply(req: func.HttpRequest, reply: api.Reply, kind: str, title: str) -> func.HttpResponse:
    """JSON, or the rollout page when a browser asks for HTML (the page then refreshes from the JSON)."""
    if reply.status != 200 or not page.wants_html(req.headers.get("accept")):
        return _json(reply.status, reply.body)
    html, headers = page.render(kind, reply.body, actions=allowed_actions(req.headers), title=title)
    return func.HttpResponse(html, status_code=200, mimetype="text/html", charset="utf-8", headers=headers)


def _operator(req: func.HttpRequest) -> tuple[str, str | None] | func.HttpResponse:
    """Who acts and why, from the optional JSON body and the signed-in principal."""
    body: Any = {}
    if req.get_body():
        try:
            body = req.get_json()
        except ValueError:
            return _json(400, {"reason": "body is not JSON"})
        if not isinstance(body, dict):
            return _json(400, {"reason": "body must be a JSON object, e.g. {\"by\": \"alice\", \"reason\": \"...\"}"})
    by = req.headers.get(PRINCIPAL_HEADER) or str(body.get("by") or "unknown")
    note = body.get("reason") or body.get("comment")
    return by[:256], (str(note)[:500] if note else None)


@bp.function_name("start_rollout_http")
@bp.route(route="rollouts", methods=["POST"], auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def start_rollout_http(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        config = load_intake_config()
    except ConfigurationError as exc:
        return _json(503, {"reason": f"intake is not configured: {exc}"})
    result = await service.from_http(req.get_body(), principal=req.headers.get(PRINCIPAL_HEADER),
                                     orch=orchestrations(client), svc=services(), config=config)
    body = result.to_dict()
    headers = None
    if result.rollout_id and result.outcome in ("started", "queued", "existing"):
        status_url = f"{req.url.split('?')[0].rstrip('/')}/{result.rollout_id}"
        body["links"] = {"status": status_url, "approve": f"{status_url}/approve", "abort": f"{status_url}/abort"}
        headers = {"Location": status_url}
    return _json(result.http_status, body, headers)


@bp.function_name("list_rollouts_http")
@bp.route(route="rollouts", methods=["GET"], auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def list_rollouts_http(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        limit = max(1, min(200, int(req.params.get("limit", "50"))))
        days = max(1, min(365, int(req.params.get("days", "30"))))
    except ValueError:
        return _json(400, {"reason": "limit and days must be whole numbers "
                                     f"(got limit={req.params.get('limit')!r}, days={req.params.get('days')!r})"})
    reply = await api.list_rollouts(orch=orchestrations(client), limit=limit,
                                    created_from=services().now() - timedelta(days=days))
    return _reply(req, reply, "list", "Rollouts")


@bp.function_name("rollout_status_http")
@bp.route(route="rollouts/{rollout_id}", methods=["GET"], auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def rollout_status_http(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    rollout_id = req.route_params["rollout_id"]
    reply = await api.rollout_status(rollout_id, orch=orchestrations(client), svc=services())
    return _reply(req, reply, "detail", f"Rollout {rollout_id}")


@bp.function_name("approve_rollout_http")
@bp.route(route="rollouts/{rollout_id}/approve", methods=["POST"], auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def approve_rollout_http(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    who = _operator(req)
    if isinstance(who, func.HttpResponse):
        return who
    reply = await api.approve(req.route_params["rollout_id"], by=who[0], note=who[1], orch=orchestrations(client),
                              now=services().now())
    return _json(reply.status, reply.body)


@bp.function_name("abort_rollout_http")
@bp.route(route="rollouts/{rollout_id}/abort", methods=["POST"], auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def abort_rollout_http(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    who = _operator(req)
    if isinstance(who, func.HttpResponse):
        return who
    reply = await api.abort(req.route_params["rollout_id"], by=who[0], note=who[1], orch=orchestrations(client),
                            now=services().now())
    return _json(reply.status, reply.body)
