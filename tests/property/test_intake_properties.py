"""Every intake, driven through its real binding with generated inputs (hypothesis): the outcome is a clear,
recorded rejection or a valid rollout, never an exception.

Inputs are a mix of valid requests and events with one field replaced by anything JSON can hold (deep nesting,
NaN and Infinity, lone surrogates, control characters, look-alike letters, dot-segments, huge numbers), arbitrary
JSON documents, and raw bytes. A "valid rollout" is re-checked independently: its request parses, its targets are
in scope and distinct case-insensitively. 1,000 examples per intake.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import logging
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest
from azure.functions.servicebus import ServiceBusMessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import bootstrap
from shared.adapters.dry_run_orchestrations import DryRunOrchestrations
from shared.adapters.simulator.world import SUBSCRIPTION
from shared.control.auth import AUTH_MODE_SETTING
from shared.domain.request import RolloutRequest
from shared.domain.scope import Scope, check_scope
from shared.intake.check import dry_run_services
from shared.intake.config import CONFIG_JSON_SETTING, CONFIG_PATH_SETTING
from shared.runtime.local_durable import indexed_functions

from ..integration.stack import CLIENT, devops_event, principal_header, request, vmss

EXAMPLES = settings(max_examples=1000, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
CONFIG: dict[str, Any] = {
    "scope": {"subscriptions": [SUBSCRIPTION]},
    "devops": [{"environment": "Production", "project": "Fabrikam", "targets": [vmss("web"), vmss("api")],
                "change": {"change_id": "{definition}-{release_name}", "payload": {"script": "apply {release_name}"}}}],
    "app_configuration": [{"key": "web:*", "label": "prod", "targets": [vmss("web")],
                           "change": {"change_id": "{key}@{etag}", "payload": {"key": "{key}"}}}],
    "resource_writes": {"action": "rollout", "ignore_callers": ["app-of-shadow-rollout"]},
}
SCOPE = Scope.model_validate(CONFIG["scope"])

# ------------------------------------------------------------------------------------------- strategies
TRICKY = ["\ud800", "web\n", "..", ".", "%2F", "web?x", "web#x", "WEB", "Web", "\u0430pi", "\x00", "\x7f", "a/b",
          "", " ", "\u2028", "rg-fleet", vmss("web"), vmss("WEB"), vmss("web") + "\n", vmss("..")]
text = st.one_of(st.text(max_size=24), st.sampled_from(TRICKY),
                 st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0xDFFF), max_size=8))
leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
                 st.floats(allow_nan=True, allow_infinity=True), text)
values = st.recursive(leaf, lambda ch: st.lists(ch, max_size=3) | st.dictionaries(text, ch, max_size=3),
                      max_leaves=8)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(doc)
    node = out
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return out


def mutated(template: dict[str, Any]) -> st.SearchStrategy[Any]:
    """The template, or the template with one field (anywhere) replaced by any JSON value."""
    paths = list(_paths(template))
    return st.one_of(st.just(template),
                     st.tuples(st.sampled_from(paths), values).map(lambda pv: _set(template, pv[0], pv[1])))


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode("utf-8")


deep = st.integers(min_value=30, max_value=3000).map(lambda n: b"[" * n + b"]" * n)
huge = st.integers(min_value=300, max_value=400).map(lambda n: b'{"rollout_id": ' + b"9" * (n * 20) + b"}")


def bodies(template: dict[str, Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(mutated(template).map(_dumps), mutated(template).map(_dumps),
                     values.map(_dumps), deep, huge, st.binary(max_size=64))


# ------------------------------------------------------------------------------------------- the stack
class Outcomes(logging.Handler):
    """The outcome each intake binding logs for what it received (started, existing, rejected, ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.args, tuple) and len(record.args) == 4:
            self.seen.append(str(record.args[1]))


class Bindings:
    def __init__(self) -> None:
        import function_app

        self.fns = {f.get_function_name(): f.get_user_function() for f in indexed_functions(function_app.app)}
        self.svc = dry_run_services()
        self.orch = DryRunOrchestrations()
        self.outcomes = Outcomes()
        self.loop = asyncio.new_event_loop()

    def call(self, name: str, *args: Any) -> Any:
        return self.loop.run_until_complete(self.fns[name](*args, client=CLIENT))

    def records(self) -> int:
        return sum(len(self.svc.store.get_items("_intake", k)) for k in ("rejected", "ignored", "reported"))


@pytest.fixture(scope="module")
def app() -> Iterator[Bindings]:
    mp = pytest.MonkeyPatch()
    mp.setenv(CONFIG_JSON_SETTING, json.dumps(CONFIG))
    mp.delenv(CONFIG_PATH_SETTING, raising=False)
    mp.setenv(AUTH_MODE_SETTING, "app-service")
    b = Bindings()
    log = logging.getLogger("shadow_rollout.intake")
    log.addHandler(b.outcomes)
    log.setLevel(logging.INFO)
    bootstrap.install(b.svc)
    bootstrap.install_orchestrations(b.orch)
    try:
        yield b
    finally:
        bootstrap.install(None)
        bootstrap.install_orchestrations(None)
        log.removeHandler(b.outcomes)
        b.loop.close()
        mp.undo()


_ids = itertools.count()


def _valid_rollout(inp: Any) -> None:
    """A started rollout is a valid one: its request parses, its targets are in scope and distinct."""
    req = RolloutRequest.model_validate(inp)
    assert check_scope(req.targets, SCOPE).allowed
    assert len({t.casefold() for t in req.targets}) == len(req.targets)


def _recorded_or_started(app: Bindings, before: tuple[int, int]) -> None:
    """What the binding logged: a start (of a valid rollout), a duplicate, or an outcome it recorded."""
    outcome = app.outcomes.seen[-1]
    starts, records = len(app.orch.would_start), app.records()
    if outcome in ("started", "queued"):
        assert starts == before[0] + 1
    elif outcome in ("rejected", "ignored", "reported"):
        assert records == before[1] + 1, f"{outcome} but not recorded"
    else:
        assert outcome == "existing" and (starts, records) == before
    for iid in list(app.orch.inputs)[before[0]:]:
        _valid_rollout(app.orch.inputs[iid])


def _sb(app: Bindings, body: bytes) -> None:
    before = (len(app.orch.would_start), app.records())
    msg = ServiceBusMessage(body=body, message_id=f"m-{next(_ids)}", delivery_count=1,
                            content_type="application/json", application_properties={}, user_properties={})
    n = len(app.outcomes.seen)
    app.call("intake_service_bus", msg)  # never raises for bad input
    assert len(app.outcomes.seen) == n + 1
    _recorded_or_started(app, before)


@EXAMPLES
@given(body=bodies(request("sb-own")))
def test_service_bus_own_schema_rejects_clearly_or_starts_a_valid_rollout(app: Bindings, body: bytes) -> None:
    _sb(app, body)


@EXAMPLES
@given(body=bodies(devops_event()))
def test_devops_hook_rejects_clearly_or_starts_a_valid_rollout(app: Bindings, body: bytes) -> None:
    _sb(app, body)


def _eg(app: Bindings, event_type: str, data: Any, event_id: str, subject: str, topic: str) -> None:
    before = (len(app.orch.would_start), app.records())
    ev = func.EventGridEvent(id=event_id, data=data, topic=topic, subject=subject, event_type=event_type,
                             event_time=None, data_version="1")
    n = len(app.outcomes.seen)
    app.call("intake_event_grid", ev)
    assert len(app.outcomes.seen) == n + 1
    _recorded_or_started(app, before)


APPCONFIG_DATA = {"key": "web:color", "label": "prod", "etag": "etag-1", "contentType": "text/plain"}
STORE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.AppConfiguration/configurationStores/cfg"


@EXAMPLES
@given(data=st.one_of(mutated(APPCONFIG_DATA), values), suffix=text, subject=text,
       topic=st.one_of(st.just(STORE), text))
def test_event_grid_app_configuration_rejects_clearly_or_starts_a_valid_rollout(
        app: Bindings, data: Any, suffix: str, subject: str, topic: str) -> None:
    _eg(app, "Microsoft.AppConfiguration.KeyValueModified", data, f"e-{next(_ids)}{suffix}", subject, topic)


WRITE_DATA = {"operationName": "Microsoft.Compute/virtualMachineScaleSets/write", "resourceUri": vmss("web"),
              "correlationId": "c-1", "claims": {"name": "ops@example.com", "appid": "someone"},
              "authorization": {"evidence": {"principalId": "p-1"}}}


@EXAMPLES
@given(data=st.one_of(mutated(WRITE_DATA), values), suffix=text, subject=text)
def test_event_grid_resource_write_rejects_clearly_or_starts_a_valid_rollout(
        app: Bindings, data: Any, suffix: str, subject: str) -> None:
    _eg(app, "Microsoft.Resources.ResourceWriteSuccess", data, f"w-{next(_ids)}{suffix}", subject, "/arm")


# ------------------------------------------------------------------------------------------- HTTP
ROLES = st.lists(st.sampled_from(["Rollout.Request", "Rollout.Approve", "Rollout.Operate", "Reader"]), max_size=3)
principals = st.one_of(st.none(), st.tuples(text, ROLES).map(lambda nr: principal_header(nr[0] or "x", nr[1])),
                       text, st.binary(max_size=40).map(lambda b: b.decode("latin-1")))


def _http(app: Bindings, name: str, method: str, body: bytes, header: str | None,
          route_params: dict[str, str] | None = None, params: dict[str, str] | None = None) -> None:
    headers = {"X-MS-CLIENT-PRINCIPAL": header} if header is not None else {}
    req = func.HttpRequest(method=method, url="https://app.example.net/api/rollouts", body=body, headers=headers,
                           route_params=route_params or {}, params=params or {})
    before = len(app.orch.would_start)
    resp: func.HttpResponse = app.call(name, req)
    out = json.loads(resp.get_body())
    assert resp.status_code in (200, 202, 400, 401, 403, 404, 409, 422), (resp.status_code, out)
    if resp.status_code >= 400:
        assert isinstance(out.get("reason"), str) and out["reason"], out
    if name == "start_rollout_http" and resp.status_code == 202:
        assert len(app.orch.would_start) == before + 1
        _valid_rollout(list(app.orch.inputs.values())[-1])


@EXAMPLES
@given(body=bodies(request("http-start")), header=principals)
def test_http_start_answers_a_clear_status_or_starts_a_valid_rollout(app: Bindings, body: bytes,
                                                                     header: str | None) -> None:
    _http(app, "start_rollout_http", "POST", body, header)


@EXAMPLES
@given(rid=text, body=bodies({"reason": "LGTM", "by": "someone"}), header=principals)
def test_http_approve_answers_a_clear_status(app: Bindings, rid: str, body: bytes, header: str | None) -> None:
    _http(app, "approve_rollout_http", "POST", body, header, route_params={"rollout_id": rid})


@EXAMPLES
@given(rid=text, body=bodies({"reason": "freeze"}), header=principals)
def test_http_abort_answers_a_clear_status(app: Bindings, rid: str, body: bytes, header: str | None) -> None:
    _http(app, "abort_rollout_http", "POST", body, header, route_params={"rollout_id": rid})


@EXAMPLES
@given(rid=text, header=principals)
def test_http_status_answers_a_clear_status(app: Bindings, rid: str, header: str | None) -> None:
    _http(app, "rollout_status_http", "GET", b"", header, route_params={"rollout_id": rid})


@EXAMPLES
@given(params=st.dictionaries(st.sampled_from(["limit", "days", "x"]), text, max_size=2), header=principals)
def test_http_list_answers_a_clear_status(app: Bindings, params: dict[str, str], header: str | None) -> None:
    _http(app, "list_rollouts_http", "GET", b"", header, params=params)


def test_the_generated_inputs_both_started_valid_rollouts_and_were_refused(app: Bindings) -> None:
    """The suites above are not vacuous: their inputs reached both ends of the invariant."""
    assert len(app.orch.would_start) >= 9, "valid inputs should start rollouts (one per intake at least)"
    assert len(app.svc.store.get_items("_intake", "rejected")) >= 1000
