"""Pure mappings from what arrives (a DevOps service hook, an App Configuration change, a scale-set write) to a
:class:`RolloutRequest`, following the intake configuration. Each refusal says which field and why.

Rollout ids are derived from what identifies the input, never random, so a redelivery maps to the same id:
``devops-<deployment id>``, ``appconfig-<hash of store, key, label, etag>``, ``model-<event id>``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import string
from dataclasses import dataclass, field
from typing import Any

from ..domain.errors import ConfigurationError, RequestError
from ..domain.request import Channel, RolloutRequest, parse_request
from ..domain.resource_id import parse_scale_set_id
from .config import ChangeTemplate, IntakeConfig
from .limits import text_field

DEVOPS_DEPLOYMENT_STARTED = "ms.vss-release.deployment-started-event"
APPCONFIG_KEY_MODIFIED = "Microsoft.AppConfiguration.KeyValueModified"
RESOURCE_WRITE_SUCCESS = "Microsoft.Resources.ResourceWriteSuccess"
VMSS_WRITE = "microsoft.compute/virtualmachinescalesets/write"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]+")


class UnmappedInput(RequestError):
    """A well-formed input that no route of the intake configuration names."""


@dataclass(frozen=True)
class Mapped:
    """A request to start, or why the input needs no rollout (``ignored``), or a ``report`` to publish."""

    request: RolloutRequest | None = None
    ignored: str | None = None
    report: dict[str, Any] | None = None
    key: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def safe_id(text: str, limit: int = 100) -> str:
    """A rollout id made of the characters the request schema allows."""
    s = _UNSAFE.sub("-", text).strip("-.:_") or "x"
    return s[:limit]


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]


class _Values(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise ConfigurationError(f"change template names {{{key}}}, which this input does not provide; "
                                 f"known: {', '.join(sorted(self))}")


def _fill(value: Any, values: _Values) -> Any:
    if isinstance(value, str):
        names = [f for _, f, _, _ in string.Formatter().parse(value) if f]
        return value.format_map(values) if names else value
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


def _change(template: ChangeTemplate, values: dict[str, str]) -> dict[str, Any]:
    v = _Values(values)
    change: dict[str, Any] = {"change_id": str(_fill(template.change_id, v))[:128], "kind": template.kind,
                              "payload": _fill(template.payload, v)}
    if template.version is not None:
        change["version"] = str(_fill(template.version, v))[:128]
    return change


def _obj(parent: Any, key: str, where: str) -> dict[str, Any]:
    v = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(v, dict):
        raise RequestError(f"{where}.{key}: expected an object (got {type(v).__name__})")
    return v


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _eq(a: str | None, b: str | None) -> bool:
    return (a or "").casefold() == (b or "").casefold()


# ---------------------------------------------------------------------------------------------- Azure DevOps
def _opt_obj(parent: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
    v = parent.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise RequestError(f"{where}.{key}: expected an object (got {type(v).__name__})")
    return v


def _identity(value: Any, where: str) -> str | None:
    """A DevOps identity reference ``{"uniqueName", "displayName"}`` as text, type-checked."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RequestError(f"{where}: expected an identity object (got {type(value).__name__})")
    return (text_field(value.get("uniqueName"), f"{where}.uniqueName", required=False)
            or text_field(value.get("displayName"), f"{where}.displayName", required=False))


def request_from_devops(event: Any, config: IntakeConfig, *, message_id: str | None = None,
                        channel: Channel | None = None) -> Mapped:
    """``ms.vss-release.deployment-started-event`` → the route of its release environment. Every field read is
    type-checked; the release's ``requestedFor`` (else ``createdBy``) is recorded as the claimed requester."""
    if not isinstance(event, dict):
        raise RequestError(f"service hook: expected a JSON object (got {type(event).__name__})")
    if event.get("eventType") != DEVOPS_DEPLOYMENT_STARTED:
        shown = event.get("eventType") if isinstance(event.get("eventType"), str) else type(event.get("eventType"))
        raise RequestError(f"service hook eventType {str(shown)[:100]!r} is not supported "
                           f"(expected {DEVOPS_DEPLOYMENT_STARTED!r})")
    res = _obj(event, "resource", "service hook")
    env = _obj(res, "environment", "resource")
    release = _opt_obj(res, "release", "resource") or _opt_obj(env, "release", "resource.environment")
    if release is None:
        raise RequestError("resource.release: expected an object (got none)")
    env_name = text_field(env.get("name"), "resource.environment.name", required=False) \
        or text_field(res.get("stageName"), "resource.stageName", required=False)
    release_id = text_field(release.get("id"), "resource.release.id", required=False, max_length=64)
    missing = [k for k, v in (("resource.environment.name", env_name), ("resource.release.id", release_id)) if not v]
    if missing:
        raise RequestError(f"service hook is missing {', '.join(missing)}")
    assert env_name is not None and release_id is not None
    project_obj = _opt_obj(res, "project", "resource")
    project = text_field(project_obj.get("name"), "resource.project.name", required=False) if project_obj else None
    definition_obj = _opt_obj(release, "releaseDefinition", "resource.release")
    definition = text_field(definition_obj.get("name"), "resource.release.releaseDefinition.name",
                            required=False) if definition_obj else None
    raw_steps = env.get("deploySteps")
    if raw_steps is not None and not isinstance(raw_steps, list):
        raise RequestError(f"resource.environment.deploySteps: expected a list (got {type(raw_steps).__name__})")
    last = raw_steps[-1] if raw_steps else None
    if last is not None and not isinstance(last, dict):
        raise RequestError("resource.environment.deploySteps[-1]: expected an object")
    attempt = text_field(res.get("attemptId"), "resource.attemptId", required=False, max_length=32) or (
        text_field(last.get("attempt"), "deploySteps[-1].attempt", required=False, max_length=32) if last else None)
    deployment = text_field(res.get("id"), "resource.id", required=False, max_length=64) or (
        text_field(last.get("deploymentId"), "deploySteps[-1].deploymentId", required=False, max_length=64)
        if last else None)
    env_id = text_field(env.get("id"), "resource.environment.id", required=False, max_length=64)
    deployment_id = deployment or f"{release_id}-{env_id or env_name}-{attempt or 1}"
    routes = [r for r in config.devops if _eq(r.environment, env_name)
              and (r.project is None or _eq(r.project, project))
              and (r.release_definition is None or _eq(r.release_definition, definition))]
    if not routes:
        raise UnmappedInput(f"no devops route for project {project!r}, release definition {definition!r}, "
                            f"environment {env_name!r} ({len(config.devops)} routes configured)")
    route = routes[0]
    release_name = text_field(release.get("name"), "resource.release.name", required=False) or release_id
    values = {"release_name": release_name, "release_id": release_id,
              "environment_name": env_name, "environment_id": env_id or "",
              "deployment_id": deployment_id, "project": project or "", "definition": definition or "",
              "attempt": attempt or "1"}
    claimed = _identity(release.get("requestedFor"), "resource.release.requestedFor") \
        or _identity(release.get("createdBy"), "resource.release.createdBy")
    event_id = text_field(event.get("id"), "id", required=False)
    req = parse_request({
        "rollout_id": safe_id(f"devops-{deployment_id}"), "targets": list(route.targets),
        "change": _change(route.change, values), "policy": dict(route.policy),
        "requester": (claimed or f"azure-devops:{project or '?'}")[:256], "claimed_requester": claimed,
        "channel": channel.model_dump() if channel is not None else None,
        "source": "azure-devops",
        "origin": {"message_id": message_id, "event_id": event_id,
                   "event_type": DEVOPS_DEPLOYMENT_STARTED, "deployment_id": deployment_id,
                   "details": {k: values[k] for k in ("project", "definition", "release_name", "environment_name",
                                                      "attempt")}},
    })
    return Mapped(request=req, key=req.rollout_id)


# ---------------------------------------------------------------------------------------------- Event Grid
def request_from_app_configuration(event_id: str, subject: str, topic: str, data: Any,
                                   config: IntakeConfig, *, channel: Channel | None = None) -> Mapped:
    """``KeyValueModified`` → the route of its key and label; a key no route names is ignored."""
    if not isinstance(data, dict):
        raise RequestError(f"event {event_id}: data: expected an object (got {type(data).__name__})")
    raw_key, raw_label, raw_etag = data.get("key"), data.get("label"), data.get("etag")
    missing = [n for n, v in (("data.key", raw_key), ("data.etag", raw_etag)) if not isinstance(v, str) or not v]
    if missing:
        raise RequestError(f"event {event_id}: App Configuration event is missing {', '.join(missing)}")
    key = text_field(raw_key, "data.key", max_length=10_000) or ""
    etag = text_field(raw_etag, "data.etag") or ""
    if raw_label is not None and not isinstance(raw_label, str):
        raise RequestError(f"data.label: expected text or null (got {type(raw_label).__name__})")
    label = text_field(raw_label, "data.label", required=False)
    text_field(topic, "topic", required=False, max_length=1024)
    routes = [r for r in config.app_configuration if fnmatch.fnmatchcase(key, r.key)
              and (r.label is None or r.label == (label or ""))]
    if not routes:
        return Mapped(ignored=f"no app_configuration route for key {key!r} label {label!r}", key=event_id)
    route = routes[0]
    store = topic.rstrip("/").rsplit("/", 1)[-1] if topic else ""
    values = {"key": key, "label": str(label or ""), "etag": etag, "event_id": event_id, "store": store}
    rollout_id = safe_id(f"appconfig-{_hash(store.lower(), key, str(label or ''), etag)}")
    req = parse_request({
        "rollout_id": rollout_id, "targets": list(route.targets), "change": _change(route.change, values),
        "policy": dict(route.policy), "requester": f"app-configuration:{store or '?'}"[:256],
        "channel": channel.model_dump() if channel is not None else None,
        "source": "app-configuration",
        "origin": {"event_id": event_id, "event_type": APPCONFIG_KEY_MODIFIED, "subject": subject[:1024] or None,
                   "details": {"key": key, "label": str(label or ""), "etag": etag}},
    })
    return Mapped(request=req, key=rollout_id)


def _callers(data: dict[str, Any]) -> list[str]:
    claims = _dict(data.get("claims"))
    evidence = _dict(_dict(data.get("authorization")).get("evidence"))
    found = [claims.get("appid"), claims.get("oid"),
             claims.get("http://schemas.microsoft.com/identity/claims/objectidentifier"), evidence.get("principalId")]
    return [c for c in found if isinstance(c, str) and c]


def request_from_resource_write(event_id: str, subject: str, data: Any, config: IntakeConfig, *,
                                channel: Channel | None = None) -> Mapped:
    """A scale set's model written outside this tool: roll it out guarded, report it, or ignore it."""
    if not isinstance(data, dict):
        raise RequestError(f"event {event_id}: data: expected an object (got {type(data).__name__})")
    op = text_field(data.get("operationName"), "data.operationName", required=False) or ""
    if op.lower() != VMSS_WRITE:
        return Mapped(ignored=f"operation {op[:200] or '(none)'} is not a scale set model write", key=event_id)
    resource = text_field(data.get("resourceUri"), "data.resourceUri", required=False, max_length=1024) \
        or text_field(subject, "subject", required=False, max_length=1024) or ""
    try:
        parse_scale_set_id(resource)
    except ValueError as exc:
        raise RequestError(f"event {event_id}: data.resourceUri: {exc}") from exc
    rules = config.resource_writes
    ignore = {c.lower() for c in rules.ignore_callers}
    callers = _callers(data)
    own = [c for c in callers if c.lower() in ignore]
    if own:
        return Mapped(ignored=f"{resource.rsplit('/', 1)[-1]} written by ignored caller {own[0]}", key=event_id)
    if rules.action == "ignore":
        return Mapped(ignored="resource_writes.action is 'ignore'", key=event_id)
    claims = _dict(data.get("claims"))
    named = [c for c in (claims.get("name"), claims.get("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"))
             if isinstance(c, str) and c]
    who = text_field((named or callers or ["unknown"])[0], "data.claims.name", max_length=256) or "unknown"
    correlation = text_field(data.get("correlationId"), "data.correlationId", required=False) or ""
    details = {"resource_id": resource, "caller": who, "correlation_id": correlation, "operation": op}
    if rules.action == "report":
        return Mapped(report={"resource_id": resource, "caller": who, "correlation_id": correlation,
                              "reason": f"model of {resource.rsplit('/', 1)[-1]} changed outside shadow-rollout by "
                                        f"{who}; resource_writes.action is 'report'"},
                      key=event_id, details=details)
    values = {"event_id": event_id, "resource_id": resource, "correlation_id": correlation,
              "scale_set": resource.rsplit("/", 1)[-1], "caller": who}
    req = parse_request({
        "rollout_id": safe_id(f"model-{event_id}"), "targets": [resource], "change": _change(rules.change, values),
        "policy": dict(rules.policy), "requester": who[:256], "claimed_requester": who[:256],
        "channel": channel.model_dump() if channel is not None else None, "source": "resource-write",
        "origin": {"event_id": event_id, "event_type": RESOURCE_WRITE_SUCCESS, "subject": subject[:1024] or None,
                   "correlation_id": correlation or None, "details": {"caller": who[:200]}},
    })
    return Mapped(request=req, key=req.rollout_id, details=details)
