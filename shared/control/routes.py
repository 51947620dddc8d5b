"""The HTTP routes, without the binding: who calls (:mod:`.auth`), what the body says (within :mod:`..intake.limits`),
and the handler's :class:`~.api.Reply`. ``functions/control.py`` and ``shadow-rollout intake-check`` both call these,
so a dry run goes through exactly the code path of the binding.

Nothing here raises for bad input: every refusal is a reply with a status, a ``code`` from the closed set of
docs/intake.md and a reason; refused approvals and aborts are recorded like refused requests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ..bootstrap import Services
from ..domain.errors import InvalidInput, RequestError
from ..intake import service
from ..intake.config import IntakeConfig
from ..intake.limits import load_json, text_field
from ..ports import Orchestrations
from . import api
from .auth import Action, Principal, Refusal, authorise, caller

_ROLLOUT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")


def _who(headers: Mapping[str, str], environ: Mapping[str, str] | None) -> Principal | Refusal:
    return caller(headers, environ)


def _rollout_id(value: Any) -> str | None:
    return value if isinstance(value, str) and _ROLLOUT_ID.fullmatch(value) else None


def _bad_id(value: Any) -> api.Reply:
    shown = value[:100] if isinstance(value, str) else type(value).__name__
    return api.Reply(400, {"code": "malformed", "reason": f"{shown!r} is not a rollout id (letters, digits, "
                                                          "_ . : -, at most 100)"})


def _note(body: bytes) -> str | None:
    """The optional operator note of an approve or abort body; who acts is never read from it."""
    if not body:
        return None
    data = load_json(body, "body")
    if not isinstance(data, dict):
        raise RequestError("body must be a JSON object, e.g. {\"reason\": \"...\"} (who acts comes from sign-in)")
    note = data.get("reason") if data.get("reason") is not None else data.get("comment")
    return text_field(note, "body.reason", required=False, max_length=500)


def _record_refusal(svc: Services, route: str, rollout_id: str | None, refusal: Refusal | api.Reply,
                    key: str) -> None:
    status, reason, code = ((refusal.status, refusal.reason, refusal.code) if isinstance(refusal, Refusal)
                            else (refusal.status, str(refusal.body.get("reason")), refusal.body.get("code")))
    kind = code if code in ("unauthenticated", "forbidden", "malformed") else "malformed"
    result = service.IntakeResult("rejected", f"{route} refused ({status}): {reason}", kind, rollout_id)
    service.record(svc, result, source=f"http-{route}", key=key)


async def start(headers: Mapping[str, str], body: bytes, *, orch: Orchestrations, svc: Services,
                config: IntakeConfig, environ: Mapping[str, str] | None = None) -> service.IntakeResult:
    """POST /rollouts: a caller refused before the body is read is recorded too."""
    who = _who(headers, environ)
    if isinstance(who, Refusal):
        result = service.IntakeResult("rejected", f"rejected: {who.reason}", who.code)
        service.record(svc, result, source="http", key=service.message_key(None, body))
        return result
    return await service.from_http(body, principal=who, orch=orch, svc=svc, config=config)


async def _act(action: Action, headers: Mapping[str, str], body: bytes, rollout_id: Any, *, orch: Orchestrations,
               svc: Services, environ: Mapping[str, str] | None) -> api.Reply:
    route = action.value
    rid = _rollout_id(rollout_id)
    if rid is None:
        return _bad_id(rollout_id)
    who = _who(headers, environ)
    if isinstance(who, Refusal):
        _record_refusal(svc, route, rid, who, f"{rid}:anonymous")
        return api.Reply.refused(who, rid)
    try:
        note = _note(body)
    except InvalidInput as exc:
        return api.Reply(400, {"rollout_id": rid, "code": "malformed", "reason": str(exc)})
    if action is Action.APPROVE:
        reply = await api.approve(rid, actor=who, note=note, orch=orch, svc=svc, now=svc.now())
    else:
        reply = await api.abort(rid, actor=who, note=note, orch=orch, now=svc.now())
    if reply.status in (401, 403):
        _record_refusal(svc, route, rid, reply, f"{rid}:{who.name}")
    return reply


async def approve(headers: Mapping[str, str], body: bytes, rollout_id: Any, *, orch: Orchestrations,
                  svc: Services, environ: Mapping[str, str] | None = None) -> api.Reply:
    """POST /rollouts/{id}/approve."""
    return await _act(Action.APPROVE, headers, body, rollout_id, orch=orch, svc=svc, environ=environ)


async def abort(headers: Mapping[str, str], body: bytes, rollout_id: Any, *, orch: Orchestrations,
                svc: Services, environ: Mapping[str, str] | None = None) -> api.Reply:
    """POST /rollouts/{id}/abort."""
    return await _act(Action.ABORT, headers, body, rollout_id, orch=orch, svc=svc, environ=environ)


def _reader(headers: Mapping[str, str], environ: Mapping[str, str] | None) -> Principal | api.Reply:
    who = _who(headers, environ)
    if isinstance(who, Refusal):
        return api.Reply.refused(who)
    refusal = authorise(who, Action.READ)
    return api.Reply.refused(refusal) if refusal is not None else who


async def status(headers: Mapping[str, str], rollout_id: Any, *, orch: Orchestrations, svc: Services,
                 environ: Mapping[str, str] | None = None) -> api.Reply:
    """GET /rollouts/{id}: any of the three roles may read."""
    rid = _rollout_id(rollout_id)
    if rid is None:
        return _bad_id(rollout_id)
    who = _reader(headers, environ)
    if isinstance(who, api.Reply):
        return who
    return await api.rollout_status(rid, orch=orch, svc=svc)


async def list_rollouts(headers: Mapping[str, str], params: Mapping[str, Any], *, orch: Orchestrations,
                        svc: Services, environ: Mapping[str, str] | None = None) -> api.Reply:
    """GET /rollouts?limit=&days=: whole numbers, clamped to 1-200 and 1-365."""
    who = _reader(headers, environ)
    if isinstance(who, api.Reply):
        return who
    raw_limit, raw_days = params.get("limit", "50"), params.get("days", "30")
    if not (isinstance(raw_limit, str) and isinstance(raw_days, str)
            and re.fullmatch(r"[0-9]{1,6}", raw_limit) and re.fullmatch(r"[0-9]{1,6}", raw_days)):
        return api.Reply(400, {"code": "malformed", "reason": "limit and days must be whole numbers (got "
                                                              f"limit={str(raw_limit)[:20]!r}, "
                                                              f"days={str(raw_days)[:20]!r})"})
    limit, days = max(1, min(200, int(raw_limit))), max(1, min(365, int(raw_days)))
    return await api.list_rollouts(orch=orch, limit=limit, created_from=svc.now() - timedelta(days=days))
