"""The whole Function App on the simulator, driven like Azure would drive it: the real trigger functions are
called with real ``azure.functions`` objects, and their Durable client is the local replay runner."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage

from shared import bootstrap
from shared.adapters.local_orchestrations import LocalOrchestrations
from shared.adapters.memory_outcomes import InMemoryOutcomePublisher
from shared.adapters.simulator.adapters import SIM_EPOCH, to_datetime, to_minute
from shared.adapters.simulator.scenario import parse_scenario
from shared.adapters.simulator.world import SUBSCRIPTION, FleetWorld, vmss_resource_id
from shared.control.auth import AUTH_MODE_SETTING
from shared.domain.request import instance_id_for
from shared.intake.config import CONFIG_JSON_SETTING, CONFIG_PATH_SETTING
from shared.runtime.local_durable import LocalDurableRunner, indexed_functions

# What the host hands a function for its durable client binding; the installed local Orchestrations is used.
CLIENT = json.dumps({"taskHubName": "ShadowRolloutHub", "creationUrls": {}, "managementUrls": {},
                     "rpcBaseUrl": "http://127.0.0.1:9/runtime/webhooks/durabletask/"})
OTHER_SUB = "11111111-2222-4333-8444-555555555555"
FAST_POLICY = {"production_watch_minutes": 0, "bake_minutes": 10, "bake_check_minutes": 5, "baseline_minutes": 5,
               "wave_fractions": [0.25, 0.75], "wave_watch_minutes": 5}
SETS = ["web", "api"]


def vmss(name: str, sub: str = SUBSCRIPTION, rg: str = "rg-fleet") -> str:
    return vmss_resource_id(name).replace(SUBSCRIPTION, sub).replace("rg-fleet", rg)


def intake_config(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "scope": {"subscriptions": [SUBSCRIPTION]},
        "devops": [{"environment": "Production", "project": "Fabrikam", "targets": [vmss("web"), vmss("api")],
                    "change": {"change_id": "{definition}-{release_name}", "kind": "run-command",
                               "payload": {"script": "apply-config {release_name}"}, "version": "{release_name}"},
                    "policy": FAST_POLICY}],
        "app_configuration": [{"key": "web:*", "label": "prod", "targets": [vmss("web")],
                               "change": {"change_id": "{key}@{etag}", "payload": {"key": "{key}"}},
                               "policy": FAST_POLICY}],
        "resource_writes": {"action": "report", "ignore_callers": ["app-of-shadow-rollout"]},
    }
    cfg.update(over)
    return cfg


def request(rollout_id: str = "r1", targets: list[str] | None = None, **policy: Any) -> dict[str, Any]:
    return {"rollout_id": rollout_id, "targets": targets or [vmss("web")],
            "change": {"change_id": "cfg-1", "kind": "run-command", "payload": {"script": "echo"}},
            "policy": {**FAST_POLICY, **policy}, "requester": "alice@example.com"}


def devops_event(deployment_id: int = 77, environment: str = "Production",
                 release: str = "Release-12") -> dict[str, Any]:
    """An ``ms.vss-release.deployment-started-event`` service hook, as Azure DevOps posts it."""
    return {
        "id": "4a3f0c1e-0000-4000-8000-000000000001", "eventType": "ms.vss-release.deployment-started-event",
        "publisherId": "rm", "message": {"text": f"Deployment of release {release} on environment {environment} "
                                                 "started."},
        "resource": {
            "id": deployment_id, "attemptId": 1, "stageName": environment,
            "environment": {"id": 5, "name": environment, "status": "inProgress", "releaseId": 12,
                            "release": {"id": 12, "name": release}},
            "release": {"id": 12, "name": release, "releaseDefinition": {"id": 3, "name": "web-config"},
                        "createdBy": {"displayName": "Dana", "uniqueName": "dana@fabrikam.com"}},
            "project": {"id": "p-1", "name": "Fabrikam"},
        },
        "resourceContainers": {"project": {"id": "p-1"}}, "createdDate": "2026-01-05T10:00:00Z",
    }


def sb_message(body: Any, message_id: str = "m-1", delivery_count: int = 1) -> ServiceBusMessage:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ServiceBusMessage(body=raw, message_id=message_id, delivery_count=delivery_count,
                             content_type="application/json", application_properties={}, user_properties={})


def eg_event(event_type: str, data: Any, *, event_id: str = "e-1", subject: str = "",
             topic: str = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.AppConfiguration/"
                          "configurationStores/cfg") -> func.EventGridEvent:
    return func.EventGridEvent(id=event_id, data=data, topic=topic, subject=subject, event_type=event_type,
                               event_time=None, data_version="1")


ALL_ROLES = ("Rollout.Request", "Rollout.Approve", "Rollout.Operate")


def principal_header(name: str, roles: tuple[str, ...] | list[str] = ALL_ROLES, oid: str | None = None) -> str:
    """An ``X-MS-CLIENT-PRINCIPAL`` header as App Service Authentication injects it (Base64 JSON of claims)."""
    claims = [{"typ": "name", "val": name}, *({"typ": "roles", "val": r} for r in roles)]
    if oid:
        claims.append({"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": oid})
    doc = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def http(method: str, route: str, body: Any = None, params: dict[str, str] | None = None,
         route_params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
         as_: str | None = "requester@example.com", roles: tuple[str, ...] | list[str] = ALL_ROLES) -> func.HttpRequest:
    """An HTTP request signed in as ``as_`` (None: not signed in) holding ``roles``."""
    raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = dict(headers or {})
    if as_ is not None:
        hdrs.setdefault("X-MS-CLIENT-PRINCIPAL", principal_header(as_, roles))
    return func.HttpRequest(method=method, url=f"https://app.example.net/api/{route}", body=raw,
                            params=params or {}, route_params=route_params or {}, headers=hdrs)


@dataclass
class Stack:
    world: FleetWorld
    services: bootstrap.Services
    runner: LocalDurableRunner
    outcomes: InMemoryOutcomePublisher
    phases: dict[str, list[str]]

    def fn(self, name: str) -> Any:
        import function_app

        for f in indexed_functions(function_app.app):
            if f.get_function_name() == name:
                return f.get_user_function()
        raise KeyError(name)

    def call(self, name: str, *args: Any) -> Any:
        return asyncio.run(self.fn(name)(*args, client=CLIENT))

    def deliver(self, msg: ServiceBusMessage) -> None:
        self.call("intake_service_bus", msg)

    def event(self, ev: func.EventGridEvent) -> None:
        self.call("intake_event_grid", ev)

    def request(self, name: str, req: func.HttpRequest) -> tuple[int, dict[str, Any]]:
        resp: func.HttpResponse = self.call(name, req)
        return resp.status_code, json.loads(resp.get_body())

    def phase(self, rollout_id: str) -> str | None:
        inst = self.runner.instances.get(instance_id_for(rollout_id))
        cs = inst.custom_status if inst else None
        return cs.get("phase") if isinstance(cs, dict) else None

    def run(self, until_phase: tuple[str, str] | None = None) -> None:
        if until_phase is None:
            self.runner.run()
            return
        rid, phase = until_phase
        self.runner.run(stop=lambda: self.phase(rid) == phase)
        assert self.phase(rid) == phase, f"{rid} never reached {phase} (at {self.phase(rid)})"

    def top_level(self) -> list[str]:
        return [i for i, inst in self.runner.instances.items() if inst.name == "rollout_orchestrator"]

    def record(self, rollout_id: str) -> dict[str, Any]:
        rec = self.services.store.get_rollout(rollout_id)
        assert rec is not None, f"no record of {rollout_id}"
        return rec

    def kinds(self, rollout_id: str) -> list[str]:
        return [d["kind"] for d in self.services.store.decisions(rollout_id)]

    def intake_records(self, outcome: str) -> dict[str, dict[str, Any]]:
        return self.services.store.get_items("_intake", outcome)


@contextmanager
def stack(monkeypatch: Any, config: dict[str, Any] | None = None, capacity: int = 8) -> Iterator[Stack]:
    scenario = parse_scenario({"name": "intake", "seed": 3,
                               "fleet": {"scale_sets": [{"name": n, "capacity": capacity} for n in SETS]},
                               "change": {"id": "cfg-1"}})
    world = FleetWorld(scenario)
    services = bootstrap.simulator_services(world)
    outcomes = InMemoryOutcomePublisher()
    services.outcomes = outcomes
    phases: dict[str, list[str]] = {}

    def on_status(iid: str, status: Any) -> None:
        if isinstance(status, dict) and status.get("phase"):
            seen = phases.setdefault(iid, [])
            if not seen or seen[-1] != status["phase"]:
                seen.append(status["phase"])

    import function_app

    def set_clock(t: Any) -> None:
        world.clock.now = to_minute(t)

    runner = LocalDurableRunner(function_app.app, start=SIM_EPOCH, set_clock=set_clock,
                                read_clock=lambda: to_datetime(world.clock.now), on_status=on_status)
    monkeypatch.setenv(CONFIG_JSON_SETTING, json.dumps(config if config is not None else intake_config()))
    monkeypatch.delenv(CONFIG_PATH_SETTING, raising=False)
    monkeypatch.setenv(AUTH_MODE_SETTING, "app-service")
    bootstrap.install(services)
    bootstrap.install_orchestrations(LocalOrchestrations(runner))
    try:
        yield Stack(world, services, runner, outcomes, phases)
    finally:
        bootstrap.install(None)
        bootstrap.install_orchestrations(None)
