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
from ..domain.control import on_busy_targets
from ..domain.errors import InvalidInput, RequestError, ShadowRolloutError
from ..domain.policy import RolloutPolicy
from ..domain.request import RolloutRequest, instance_id_for, parse_request
from ..domain.scope import check_scope
from ..orchestration.rollout import ROLLOUT
from ..ports import InstanceStatus, Orchestrations
from .config import IntakeConfig
from .mapping import (
    APPCONFIG_KEY_MODIFIED,
    RESOURCE_WRITE_SUCCESS,
    Mapped,
    request_from_app_configuration,
    request_from_devops,
    request_from_resource_write,
)

INTAKE = "_intake"  # the rollout-store partition of intake records
MAX_BODY = 256 * 1024
Outcome = Literal["started", "queued", "existing", "rejected", "ignored", "reported"]
Kind = Literal["", "malformed", "out_of_scope", "busy", "unmapped"]
_HTTP: dict[tuple[str, str], int] = {("rejected", "malformed"): 400, ("rejected", "unmapped"): 422,
                                     ("rejected", "out_of_scope"): 403, ("rejected", "busy"): 409}


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
    if config.scope.tags:
        try:
            tags = {k.lower(): v for k, v in svc.fleet.tags(request.targets).items()}
        except (NotImplementedError, ShadowRolloutError):
            tags = None  # check_scope fails closed and says the tags could not be read
    verdict = check_scope(request.targets, config.scope, tags)
    if not verdict.allowed:
        return _rejected("out_of_scope", f"out of scope: {verdict.reason}", request)
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
    return IntakeResult("started", f"rollout {request.rollout_id} started on {len(request.targets)} scale sets",
                        "", request.rollout_id, iid)


def _json(body: bytes, what: str) -> Any:
    if len(body) > MAX_BODY:
        raise RequestError(f"{what} is {len(body)} bytes; at most {MAX_BODY} are accepted")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(f"{what} is not JSON: {exc}") from exc


async def _finish(mapped: Mapped | None, error: InvalidInput | None, *, source: str, key: str, excerpt: str,
                  orch: Orchestrations, svc: Services, config: IntakeConfig) -> IntakeResult:
    if error is not None:
        kind: Kind = "unmapped" if str(error).startswith("no devops route") else "malformed"
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


def _message_key(message_id: str | None, body: bytes) -> str:
    return message_id or f"sha-{hashlib.sha256(body).hexdigest()[:20]}"


async def from_service_bus(body: bytes, *, message_id: str | None, orch: Orchestrations, svc: Services,
                           config: IntakeConfig) -> IntakeResult:
    """The project's own request message, or an Azure DevOps release service hook."""
    key = _message_key(message_id, body)
    mapped: Mapped | None = None
    error: InvalidInput | None = None
    try:
        data = _json(body, "message body")
        if isinstance(data, dict) and "eventType" in data:
            mapped = request_from_devops(data, config, message_id=message_id)
        else:
            if isinstance(data, dict):
                origin = dict(data.get("origin") or {}) if isinstance(data.get("origin"), dict) else {}
                data = {**data, "source": data.get("source", "service-bus"),
                        "origin": {**origin, "message_id": message_id}}
            req = parse_request(data)
            mapped = Mapped(request=req, key=req.rollout_id)
    except InvalidInput as exc:
        error = exc
    return await _finish(mapped, error, source="service-bus", key=key, excerpt=body[:500].decode("utf-8", "replace"),
                         orch=orch, svc=svc, config=config)


async def from_event_grid(*, event_id: str, event_type: str, subject: str, topic: str, data: Any,
                          orch: Orchestrations, svc: Services, config: IntakeConfig) -> IntakeResult:
    """App Configuration key changes and scale-set model writes; other event types are ignored."""
    mapped: Mapped | None = None
    error: InvalidInput | None = None
    try:
        if event_type == APPCONFIG_KEY_MODIFIED:
            mapped = request_from_app_configuration(event_id, subject, topic, data, config)
        elif event_type == RESOURCE_WRITE_SUCCESS:
            mapped = request_from_resource_write(event_id, subject, data, config)
        else:
            mapped = Mapped(ignored=f"event type {event_type!r} is not handled", key=event_id)
    except InvalidInput as exc:
        error = exc
    excerpt = json.dumps({"id": event_id, "eventType": event_type, "subject": subject, "data": data},
                         default=str)[:500]
    return await _finish(mapped, error, source="event-grid", key=event_id or "no-id", excerpt=excerpt,
                         orch=orch, svc=svc, config=config)


async def from_http(body: bytes, *, principal: str | None, orch: Orchestrations, svc: Services,
                    config: IntakeConfig) -> IntakeResult:
    """A request posted by an operator or a script; the signed-in principal (if any) is the requester."""
    mapped: Mapped | None = None
    error: InvalidInput | None = None
    try:
        data = _json(body, "request body")
        if isinstance(data, dict):
            data = {**data, "source": data.get("source", "http")}
            if principal and data.get("requester", "unknown") == "unknown":
                data["requester"] = principal
        req = parse_request(data)
        mapped = Mapped(request=req, key=req.rollout_id)
    except InvalidInput as exc:
        error = exc
    return await _finish(mapped, error, source="http", key=_message_key(None, body),
                         excerpt=body[:500].decode("utf-8", "replace"), orch=orch, svc=svc, config=config)
