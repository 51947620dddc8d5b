"""HTTP bindings: start a rollout, list rollouts, get one's status, approve, abort.

Function-level keys stay on as a second lock; who the caller is comes from App Service Authentication (or, in the
documented function-key mode, is recorded as the anonymous key holder): see shared/control/auth.py. Each binding
hands the request's headers, body and route to shared.control.routes and turns its reply into a response.
"""

from __future__ import annotations

import json
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared.bootstrap import orchestrations, services
from shared.control import api, page, routes
from shared.control.roles import allowed_actions
from shared.domain.errors import ConfigurationError
from shared.intake.config import load_intake_config

bp = df.Blueprint()
AUTH = func.AuthLevel.FUNCTION


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json",
                             headers=headers)


def _headers(req: func.HttpRequest) -> dict[str, str]:
    return {k: v for k, v in req.headers.items()}


def _reply(req: func.HttpRequest, reply: api.Reply, kind: str, title: str) -> func.HttpResponse:
    """JSON, or the rollout page when a browser asks for HTML (the page then refreshes from the JSON)."""
    if reply.status != 200 or not page.wants_html(req.headers.get("accept")):
        return _json(reply.status, reply.body)
    html, headers = page.render(kind, reply.body, actions=allowed_actions(_headers(req)), title=title)
    return func.HttpResponse(html, status_code=200, mimetype="text/html", charset="utf-8", headers=headers)


@bp.function_name("start_rollout_http")
@bp.route(route="rollouts", methods=["POST"], auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def start_rollout_http(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        config = load_intake_config()
    except ConfigurationError as exc:
        return _json(503, {"reason": f"intake is not configured: {exc}", "code": "not_configured"})
    result = await routes.start(_headers(req), req.get_body(), orch=orchestrations(client), svc=services(),
                                config=config)
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
    reply = await routes.list_rollouts(_headers(req), dict(req.params), orch=orchestrations(client), svc=services())
    return _reply(req, reply, "list", "Rollouts")


@bp.function_name("rollout_status_http")
@bp.route(route="rollouts/{rollout_id}", methods=["GET"], auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def rollout_status_http(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    rollout_id = req.route_params.get("rollout_id")
    reply = await routes.status(_headers(req), rollout_id, orch=orchestrations(client), svc=services())
    return _reply(req, reply, "detail", f"Rollout {rollout_id}")


@bp.function_name("approve_rollout_http")
@bp.route(route="rollouts/{rollout_id}/approve", methods=["POST"], auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def approve_rollout_http(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    reply = await routes.approve(_headers(req), req.get_body(), req.route_params.get("rollout_id"),
                                 orch=orchestrations(client), svc=services())
    return _json(reply.status, reply.body)


@bp.function_name("abort_rollout_http")
@bp.route(route="rollouts/{rollout_id}/abort", methods=["POST"], auth_level=AUTH)
@bp.durable_client_input(client_name="client")
async def abort_rollout_http(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    reply = await routes.abort(_headers(req), req.get_body(), req.route_params.get("rollout_id"),
                               orch=orchestrations(client), svc=services())
    return _json(reply.status, reply.body)
