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
from ..domain.request import _VMSS_ID, RolloutRequest, parse_request
from .config import ChangeTemplate, IntakeConfig

DEVOPS_DEPLOYMENT_STARTED = "ms.vss-release.deployment-started-event"
APPCONFIG_KEY_MODIFIED = "Microsoft.AppConfiguration.KeyValueModified"
RESOURCE_WRITE_SUCCESS = "Microsoft.Resources.ResourceWriteSuccess"
VMSS_WRITE = "microsoft.compute/virtualmachinescalesets/write"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]+")


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
def request_from_devops(event: Any, config: IntakeConfig, *, message_id: str | None = None) -> Mapped:
    """``ms.vss-release.deployment-started-event`` → the route of its release environment."""
    if not isinstance(event, dict):
        raise RequestError(f"service hook: expected a JSON object (got {type(event).__name__})")
    if event.get("eventType") != DEVOPS_DEPLOYMENT_STARTED:
        raise RequestError(f"service hook eventType {event.get('eventType')!r} is not supported "
                           f"(expected {DEVOPS_DEPLOYMENT_STARTED!r})")
    res = _obj(event, "resource", "service hook")
    env = _obj(res, "environment", "resource")
    release = res.get("release") if isinstance(res.get("release"), dict) else env.get("release")
    if not isinstance(release, dict):
        raise RequestError("resource.release: expected an object (got none)")
    env_name = env.get("name") or res.get("stageName")
    missing = [k for k, v in (("resource.environment.name", env_name), ("resource.release.id", release.get("id")))
               if v in (None, "")]
    if missing:
        raise RequestError(f"service hook is missing {', '.join(missing)}")
    project = (res.get("project") or {}).get("name") if isinstance(res.get("project"), dict) else None
    definition = (release.get("releaseDefinition") or {}).get("name") \
        if isinstance(release.get("releaseDefinition"), dict) else None
    steps = env.get("deploySteps") if isinstance(env.get("deploySteps"), list) else []
    attempt = res.get("attemptId") or (steps[-1].get("attempt") if steps and isinstance(steps[-1], dict) else None)
    deployment = res.get("id") or (steps[-1].get("deploymentId") if steps and isinstance(steps[-1], dict) else None)
    deployment_id = str(deployment) if deployment not in (None, "") else \
        f"{release['id']}-{env.get('id', env_name)}-{attempt or 1}"
    routes = [r for r in config.devops if _eq(r.environment, env_name)
              and (r.project is None or _eq(r.project, project))
              and (r.release_definition is None or _eq(r.release_definition, definition))]
    if not routes:
        raise RequestError(f"no devops route for project {project!r}, release definition {definition!r}, "
                           f"environment {env_name!r} ({len(config.devops)} routes configured)")
    route = routes[0]
    values = {"release_name": str(release.get("name") or release["id"]), "release_id": str(release["id"]),
              "environment_name": str(env_name), "environment_id": str(env.get("id", "")),
              "deployment_id": deployment_id, "project": str(project or ""), "definition": str(definition or ""),
              "attempt": str(attempt or 1)}
    created_by = _dict(release.get("createdBy"))
    requester = created_by.get("uniqueName") or created_by.get("displayName") or f"azure-devops:{project or '?'}"
    req = parse_request({
        "rollout_id": safe_id(f"devops-{deployment_id}"), "targets": list(route.targets),
        "change": _change(route.change, values), "policy": dict(route.policy), "requester": str(requester)[:256],
        "source": "azure-devops",
        "origin": {"message_id": message_id, "event_id": str(event.get("id") or "") or None,
                   "event_type": DEVOPS_DEPLOYMENT_STARTED, "deployment_id": deployment_id,
                   "details": {k: values[k] for k in ("project", "definition", "release_name", "environment_name",
                                                      "attempt")}},
    })
    return Mapped(request=req, key=req.rollout_id)


# ---------------------------------------------------------------------------------------------- Event Grid
def request_from_app_configuration(event_id: str, subject: str, topic: str, data: Any,
                                   config: IntakeConfig) -> Mapped:
    """``KeyValueModified`` → the route of its key and label; a key no route names is ignored."""
    if not isinstance(data, dict):
        raise RequestError(f"event {event_id}: data: expected an object (got {type(data).__name__})")
    key, label, etag = data.get("key"), data.get("label"), data.get("etag")
    missing = [n for n, v in (("data.key", key), ("data.etag", etag)) if not isinstance(v, str) or not v]
    if missing:
        raise RequestError(f"event {event_id}: App Configuration event is missing {', '.join(missing)}")
    assert isinstance(key, str) and isinstance(etag, str)
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
        "policy": dict(route.policy), "requester": f"app-configuration:{store or '?'}",
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
    return [str(c) for c in found if c]


def request_from_resource_write(event_id: str, subject: str, data: Any, config: IntakeConfig) -> Mapped:
    """A scale set's model written outside this tool: roll it out guarded, report it, or ignore it."""
    if not isinstance(data, dict):
        raise RequestError(f"event {event_id}: data: expected an object (got {type(data).__name__})")
    op = str(data.get("operationName") or "")
    if op.lower() != VMSS_WRITE:
        return Mapped(ignored=f"operation {op or '(none)'} is not a scale set model write", key=event_id)
    resource = str(data.get("resourceUri") or subject or "")
    if not _VMSS_ID.match(resource):
        raise RequestError(f"event {event_id}: data.resourceUri {resource!r} is not a virtual machine scale set "
                           "resource id")
    rules = config.resource_writes
    ignore = {c.lower() for c in rules.ignore_callers}
    callers = _callers(data)
    own = [c for c in callers if c.lower() in ignore]
    if own:
        return Mapped(ignored=f"{resource.rsplit('/', 1)[-1]} written by ignored caller {own[0]}", key=event_id)
    if rules.action == "ignore":
        return Mapped(ignored="resource_writes.action is 'ignore'", key=event_id)
    claims = _dict(data.get("claims"))
    who = str(claims.get("name") or claims.get("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn")
              or (callers[0] if callers else "unknown"))
    correlation = str(data.get("correlationId") or "")
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
        "policy": dict(rules.policy), "requester": who[:256], "source": "resource-write",
        "origin": {"event_id": event_id, "event_type": RESOURCE_WRITE_SUCCESS, "subject": subject[:1024] or None,
                   "correlation_id": correlation or None, "details": {"caller": who[:200]}},
    })
    return Mapped(request=req, key=req.rollout_id, details=details)
