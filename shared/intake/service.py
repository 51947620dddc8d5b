"""Intake handlers: parse what a trigger received, check it, and start exactly one rollout, or say why not.

Each handler returns an :class:`IntakeResult` and records every refusal (and every report) in the rollout store
under the reserved rollout id ``_intake``, and publishes it as an outcome event, so a pipeline waiting on its
rollout learns of the refusal too. Bindings in ``functions/`` only translate that result into a settlement or
an HTTP response. Nothing here raises for bad input: a malformed or unauthorised input is settled as rejected,
never retried. What does raise is what a retry can fix (the Durable client or the store being unreachable, a
missing intake configuration), so that the platform redelivers it.

Exactly once: the instance id is derived from the rollout id, and :meth:`Orchestrations.start` returns the
existing instance (running or finished) instead of starting another.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from ..bootstrap import Services
from ..control.auth import Action, Principal, authorise
from ..domain.control import on_busy_targets
from ..domain.errors import InvalidInput, RequestError, ShadowRolloutError
from ..domain.policy import RolloutPolicy
from ..domain.request import Channel, RolloutRequest, instance_id_for, parse_request
from ..domain.scope import check_scope
from ..orchestration.rollout import ROLLOUT
from ..ports import InstanceStatus, Orchestrations
from .config import IntakeConfig
from .limits import MAX_BODY, check_values, load_json
from .mapping import (
    APPCONFIG_KEY_MODIFIED,
    RESOURCE_WRITE_SUCCESS,
    Mapped,
    UnmappedInput,
    request_from_app_configuration,
    request_from_devops,
    request_from_resource_write,
)

INTAKE = "_intake"  # the rollout-store partition of intake records
__all__ = ["INTAKE", "MAX_BODY", "IntakeResult", "from_event_grid", "from_http", "from_service_bus", "message_key",
           "record", "submit"]
Outcome = Literal["started", "queued", "existing", "rejected", "ignored", "reported"]
# Why a rejection: a closed set, documented in docs/intake.md ("Rejection codes")
Kind = Literal["", "malformed", "out_of_scope", "busy", "unmapped", "unauthenticated", "forbidden"]
_HTTP: dict[tuple[str, str], int] = {("rejected", "malformed"): 400, ("rejected", "unmapped"): 422,
                                     ("rejected", "out_of_scope"): 403, ("rejected", "busy"): 409,
                                     ("rejected", "unauthenticated"): 401, ("rejected", "forbidden"): 403}


@dataclass(frozen=True)
class IntakeResult:
    outcome: Outcome
    reason: str
    kind: Kind = ""
    rollout_id: str | None = None
    instance_id: str | None = None
    existing: InstanceStatus | None = None

    @property
    def http_status(self) -> int:
        if self.outcome in ("started", "queued"):
            return 202
        return _HTTP.get((self.outcome, self.kind), 200)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outcome": self.outcome, "reason": self.reason, "rollout_id": self.rollout_id,
                               "instance_id": self.instance_id}
        if self.kind:
            out["rejected_because"] = self.kind
        if self.existing is not None:
            out["runtime_status"] = self.existing.runtime_status
            phase = self.existing.custom_status.get("phase") if isinstance(self.existing.custom_status, dict) else None
            out["phase"] = phase
        return out


def _key(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.:" else "-" for c in text)[:200]


def record(svc: Services, result: IntakeResult, *, source: str, key: str, excerpt: str = "") -> None:
    """Keep a refusal or a report where operators look (the store), and tell consumers (the outcome topic)."""
    if result.outcome not in ("rejected", "reported", "ignored"):
        return
    at = svc.now().isoformat()
    entry = {"source": source, "outcome": result.outcome, "kind": result.kind, "reason": result.reason,
             "rollout_id": result.rollout_id, "at": at, "excerpt": excerpt[:500]}
    svc.store.put_items(INTAKE, result.outcome, {_key(f"{source}:{key}"): entry})
    if result.outcome == "ignored":
        return
    event_type = "rollout.rejected" if result.outcome == "rejected" else "rollout.model_change_detected"
    svc.outcomes.publish({"event_id": f"{result.outcome}:{source}:{key}", "type": event_type,
                          "rollout_id": result.rollout_id, "instance_id": result.instance_id, "state": result.outcome,
                          "reason": result.reason, "time": at, "source": source, "summary": {"kind": result.kind}})


def _rejected(kind: Kind, reason: str, request: RolloutRequest | None = None) -> IntakeResult:
    rid = request.rollout_id if request is not None else None
    return IntakeResult("rejected", reason, kind, rid, instance_id_for(rid) if rid else None)


async def submit(request: RolloutRequest, *, orch: Orchestrations, svc: Services,
                 config: IntakeConfig) -> IntakeResult:
    """Start the rollout unless it exists already, is out of scope, or its targets are busy and policy refuses."""
    iid = request.instance_id
    existing = await orch.status(iid)
    if existing is not None:
        return IntakeResult("existing", f"rollout {request.rollout_id} exists ({existing.runtime_status}); "
                            "not started again", "", request.rollout_id, iid, existing)
    tags = None
    if config.scope is not None and config.scope.tags:
        try:
            tags = {k.lower(): v for k, v in svc.fleet.tags(request.targets).items()}
        except (NotImplementedError, ShadowRolloutError):
            tags = None  # check_scope fails closed and says the tags could not be read
    if config.scope is not None:  # None only in intake-check without --config (its verdict says so)
        verdict = check_scope(request.targets, config.scope, tags)
        if not verdict.allowed:
            return _rejected("out_of_scope", f"out of scope: {verdict.reason}", request)
    if request.policy.get("four_eyes") is False and not config.allow_four_eyes_off:
        return _rejected("forbidden", "policy four_eyes: false is refused: only the intake configuration "
                         "(allow_four_eyes_off) may waive four eyes, never the request itself", request)
    conflicts = []
    for lease in svc.leases.holders(request.targets).values():
        if lease.holder == request.rollout_id:
            continue
        holder = await orch.status(instance_id_for(lease.holder))
        if holder is None or holder.terminal:  # its rollout ended without releasing (terminated): break it
            svc.leases.release(lease.holder)
            continue
        conflicts.append((lease.resource, lease.holder, lease.since))
    if conflicts:
        d = on_busy_targets(conflicts, RolloutPolicy().with_overrides(request.policy), 0.0)
        if d.kind == "refused":
            return _rejected("busy", d.reason, request)
    started = await orch.start(ROLLOUT, iid, request.model_dump(mode="json"))
    if not started.started:  # a concurrent delivery won the race
        return IntakeResult("existing", f"rollout {request.rollout_id} exists; not started again", "",
                            request.rollout_id, iid, started.existing)
    if conflicts:
        return IntakeResult("queued", f"started and queued: {d.reason}", "", request.rollout_id, iid)
    n = len(request.targets)
    return IntakeResult("started", f"rollout {request.rollout_id} started on {n} scale set{'' if n == 1 else 's'}",
                        "", request.rollout_id, iid)


def _excerpt(body: bytes) -> str:
    """At most 500 characters of an input for the record: invalid UTF-8 and surrogates replaced."""
    return body[:500].decode("utf-8", "replace").encode("utf-8", "replace").decode("utf-8")


async def _finish(mapped: Mapped | None, error: InvalidInput | None, *, source: str, key: str, excerpt: str,
                  orch: Orchestrations, svc: Services, config: IntakeConfig) -> IntakeResult:
    if error is not None:
        kind: Kind = "unmapped" if isinstance(error, UnmappedInput) else "malformed"
        result = _rejected(kind, f"rejected: {error}")
    elif mapped is None:
        raise AssertionError("no mapping and no error")
    elif mapped.ignored is not None:
        result = IntakeResult("ignored", mapped.ignored)
    elif mapped.report is not None:
        result = IntakeResult("reported", mapped.report["reason"])
    else:
        assert mapped.request is not None
        result = await submit(mapped.request, orch=orch, svc=svc, config=config)
        key = mapped.request.rollout_id
    record(svc, result, source=source, key=key, excerpt=excerpt)
    return result


def message_key(message_id: str | None, body: bytes) -> str:
    return message_id or f"sha-{hashlib.sha256(body).hexdigest()[:20]}"


def service_bus_channel(topic: str, subscription: str) -> Channel:
    """A message's channel identity: the topic and subscription it came through (Service Bus vouches for the
    sender's right to send there: the Azure Service Bus Data Sender role on that topic)."""
    return Channel(kind="service-bus", identity=f"service-bus:{topic or '?'}/subscriptions/{subscription or '?'}",
                   authenticated_by="service-bus")


async def from_service_bus(body: bytes, *, message_id: str | None, orch: Orchestrations, svc: Services,
                           config: IntakeConfig, topic: str = "", subscription: str = "") -> IntakeResult:
    """The project's own request message, or an Azure DevOps release service hook."""
    key = message_key(message_id, body)
    mapped: Mapped | None = None
    error: InvalidInput | None = None
    channel = service_bus_channel(topic, subscription)
    try:
        if message_id is not None:
            check_values(message_id, "message id")
        data = load_json(body, "message body")
        if isinstance(data, dict) and "eventType" in data:
            mapped = request_from_devops(data, config, message_id=message_id, channel=channel)
        else:
            if isinstance(data, dict):
                origin = dict(data.get("origin") or {}) if isinstance(data.get("origin"), dict) else {}
                claimed = data.get("requester")
                data = {**data, "source": data.get("source", "service-bus"),
                        "origin": {**origin, "message_id": message_id}, "channel": channel.model_dump(),
                        "claimed_requester": claimed if isinstance(claimed, str) and claimed != "unknown" else None,
                        "requester": claimed if isinstance(claimed, str) else channel.identity[:256]}
            req = parse_request(data)
            mapped = Mapped(request=req, key=req.rollout_id)
    except InvalidInput as exc:
        error = exc
    return await _finish(mapped, error, source="service-bus", key=key, excerpt=_excerpt(body),
                         orch=orch, svc=svc, config=config)


async def from_event_grid(*, event_id: str, event_type: str, subject: str, topic: str, data: Any,
                          orch: Orchestrations, svc: Services, config: IntakeConfig) -> IntakeResult:
    """App Configuration key changes and scale-set model writes; other event types are ignored."""
    mapped: Mapped | None = None
    error: InvalidInput | None = None
    try:
        check_values({"id": event_id, "eventType": event_type, "subject": subject, "topic": topic, "data": data},
                     "event")
        channel = Channel(kind="event-grid", identity=f"event-grid:{topic or '?'}", authenticated_by="event-grid")
        if event_type == APPCONFIG_KEY_MODIFIED:
            mapped = request_from_app_configuration(event_id, subject, topic, data, config, channel=channel)
        elif event_type == RESOURCE_WRITE_SUCCESS:
            mapped = request_from_resource_write(event_id, subject, data, config, channel=channel)
        else:
            mapped = Mapped(ignored=f"event type {event_type[:100]!r} is not handled", key=event_id)
    except InvalidInput as exc:
        error = exc
    except ValueError as exc:  # a Channel built from an unusable topic
        error = RequestError(f"event: {str(exc)[:300]}")
    try:
        excerpt = json.dumps({"id": event_id, "eventType": event_type, "subject": subject, "data": data},
                             default=str)[:500]
    except (ValueError, RecursionError):
        excerpt = "(not representable)"
    safe_key = event_id if isinstance(event_id, str) and event_id else "no-id"
    return await _finish(mapped, error, source="event-grid", key=_excerpt(safe_key.encode("utf-8", "replace")),
                         excerpt=_excerpt(excerpt.encode("utf-8", "replace")), orch=orch, svc=svc, config=config)


async def from_http(body: bytes, *, principal: Principal, orch: Orchestrations, svc: Services,
                    config: IntakeConfig) -> IntakeResult:
    """A request posted by a signed-in caller holding Rollout.Request. The caller is the requester and the
    channel; a ``requester``, ``channel`` or ``claimed_requester`` in the body is ignored (it would let the body
    name who acted)."""
    key = message_key(None, body)
    refusal = authorise(principal, Action.START)
    if refusal is not None:
        result = IntakeResult("rejected", f"rejected: {refusal.reason}", refusal.code)
        record(svc, result, source="http", key=key, excerpt=_excerpt(body))
        return result
    mapped: Mapped | None = None
    error: InvalidInput | None = None
    try:
        data = load_json(body, "request body")
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in ("requester", "channel", "claimed_requester")}
            data.update(source=data.get("source", "http"), requester=principal.name,
                        channel=principal.channel().model_dump())
        req = parse_request(data)
        mapped = Mapped(request=req, key=req.rollout_id)
    except InvalidInput as exc:
        error = exc
    return await _finish(mapped, error, source="http", key=key, excerpt=_excerpt(body), orch=orch, svc=svc,
                         config=config)
