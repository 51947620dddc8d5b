"""Pure intake and control rules: scope, mappings, busy targets, the gate, the schema and the configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.domain.control import gate_outcome, on_busy_targets
from shared.domain.errors import ConfigurationError, RequestError
from shared.domain.policy import RolloutPolicy
from shared.domain.request import parse_request, request_json_schema
from shared.domain.scope import Scope, check_scope
from shared.intake.config import load_intake_config, parse_intake_config
from shared.intake.mapping import request_from_app_configuration, request_from_devops, request_from_resource_write
from shared.publish import FAILED, OK, exit_code_for, message_of

ROOT = Path(__file__).resolve().parents[2]
SUB, OTHER = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"


def vmss(name: str, sub: str = SUB, rg: str = "rg-web") -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}"


def config(**over: Any) -> Any:
    base: dict[str, Any] = {
        "scope": {"subscriptions": [SUB]},
        "devops": [{"environment": "Production", "targets": [vmss("web")]},
                   {"environment": "Production", "release_definition": "api-config", "targets": [vmss("api")],
                    "change": {"change_id": "api-{release_id}-{attempt}", "payload": {"env": "{environment_name}"}}}],
        "app_configuration": [{"key": "web:*", "targets": [vmss("web")]}],
    }
    base.update(over)
    return parse_intake_config(base)


# ---------------------------------------------------------------------------------------------- scope
def test_target_in_an_allowed_subscription_is_in_scope() -> None:
    assert check_scope([vmss("web")], Scope(subscriptions=[SUB.upper()])).allowed


def test_target_outside_every_allowed_place_is_named_with_where_it_is() -> None:
    v = check_scope([vmss("web"), vmss("db", sub=OTHER, rg="rg-db")],
                    Scope(resource_groups=[f"/subscriptions/{SUB}/resourceGroups/rg-web"]))
    assert not v.allowed
    assert v.reasons == [f"db: subscription {OTHER}, resource group rg-db is outside the allowed scope "
                         "(0 subscriptions, 1 resource groups)"]


def test_required_tags_must_match_and_unknown_tags_fail_closed() -> None:
    scope = Scope(subscriptions=[SUB], tags={"env": ["prod", "canary"]})
    ok = check_scope([vmss("a")], scope, {vmss("a").lower(): {"Env": "prod"}})
    assert ok.allowed
    wrong = check_scope([vmss("a")], scope, {vmss("a").lower(): {"env": "dev"}})
    assert wrong.reasons == ["a: tag env='dev' is not one of ['prod', 'canary']"]
    unknown = check_scope([vmss("a")], scope, None)
    assert "its tags could not be read" in unknown.reason


def test_an_empty_scope_is_refused_as_configuration() -> None:
    with pytest.raises(ConfigurationError, match="scope must name at least one subscription or resource group"):
        parse_intake_config({"scope": {}})


def test_configuration_errors_name_the_key_path() -> None:
    with pytest.raises(ConfigurationError, match=r"intake.devops\[0\].targets: Value error, not a virtual machine"):
        config(devops=[{"environment": "P", "targets": ["/subscriptions/x/resourceGroups/y"]}])
    with pytest.raises(ConfigurationError,
                       match=r"intake.devops\[0\].policy: Value error, policy.wave_fraction: unknown key"):
        config(devops=[{"environment": "P", "targets": [vmss("w")], "policy": {"wave_fraction": [1.0]}}])


def test_configuration_is_read_from_a_yaml_file_named_by_the_app_setting(tmp_path: Path) -> None:
    f = tmp_path / "intake.yaml"
    f.write_text(f"scope:\n  subscriptions: ['{SUB}']\n", encoding="utf-8")
    assert load_intake_config({"SHADOW_ROLLOUT_INTAKE_CONFIG": str(f)}).scope.subscriptions == [SUB]
    with pytest.raises(ConfigurationError, match="no such file"):
        load_intake_config({"SHADOW_ROLLOUT_INTAKE_CONFIG": str(tmp_path / "missing.yaml")})


def test_the_documented_example_configuration_is_valid() -> None:
    import yaml

    cfg = parse_intake_config(yaml.safe_load((ROOT / "docs/examples/intake.yaml").read_text(encoding="utf-8")))
    assert cfg.devops and cfg.app_configuration and cfg.resource_writes.action in ("report", "rollout")


# ---------------------------------------------------------------------------------------------- mappings
def devops(definition: str = "web-config", env: str = "Production", **resource: Any) -> dict[str, Any]:
    res: dict[str, Any] = {"environment": {"id": 9, "name": env},
                           "release": {"id": 41, "name": "Release-41", "releaseDefinition": {"name": definition}},
                           "project": {"name": "Fabrikam"}}
    res.update(resource)
    return {"id": "evt-1", "eventType": "ms.vss-release.deployment-started-event", "resource": res}


def test_devops_route_is_chosen_by_environment_and_release_definition() -> None:
    web = request_from_devops(devops(id=1001), config()).request
    assert web is not None and web.targets == [vmss("web")] and web.rollout_id == "devops-1001"
    assert web.change.change_id == "Release-41" and web.change.version == "Release-41"
    api = request_from_devops(devops("api-config", attemptId=2), config()).request
    assert api is not None and api.targets == [vmss("web")]  # the first matching route wins: document order
    only_api = config(devops=config().model_dump()["devops"][1:])
    api = request_from_devops(devops("api-config", attemptId=2), only_api).request
    assert api is not None and api.change.change_id == "api-41-2" and api.change.payload == {"env": "Production"}
    assert api.rollout_id == "devops-41-9-2"  # no deployment id: release, environment and attempt identify it


def test_devops_event_of_another_environment_is_refused_naming_it() -> None:
    with pytest.raises(RequestError, match="no devops route for project 'Fabrikam', release definition 'web-config', "
                                           "environment 'QA'"):
        request_from_devops(devops(env="QA"), config())


def test_change_template_naming_an_unknown_placeholder_is_a_configuration_error() -> None:
    bad = config(devops=[{"environment": "Production", "targets": [vmss("w")], "change": {"change_id": "{branch}"}}])
    with pytest.raises(ConfigurationError, match=r"names \{branch\}, which this input does not provide"):
        request_from_devops(devops(), bad)


def test_app_configuration_rollout_id_depends_on_the_modification_not_the_event() -> None:
    data = {"key": "web:timeout", "label": None, "etag": "e1"}
    a = request_from_app_configuration("ev-1", "s", "/x/configurationStores/cfg", data, config()).request
    b = request_from_app_configuration("ev-2", "s", "/x/configurationStores/cfg", data, config()).request
    c = request_from_app_configuration("ev-3", "s", "/x/configurationStores/cfg", {**data, "etag": "e2"},
                                       config()).request
    assert a is not None and b is not None and c is not None
    assert a.rollout_id == b.rollout_id != c.rollout_id and a.change.change_id == "web:timeout@e1"


def test_app_configuration_label_must_match_when_the_route_names_one() -> None:
    cfg = config(app_configuration=[{"key": "web:*", "label": "prod", "targets": [vmss("web")]}])
    m = request_from_app_configuration("e", "s", "t", {"key": "web:x", "label": "dev", "etag": "1"}, cfg)
    assert m.request is None and m.ignored == "no app_configuration route for key 'web:x' label 'dev'"


def test_resource_write_of_another_operation_is_ignored_and_own_writes_too() -> None:
    cfg = config(resource_writes={"action": "rollout", "ignore_callers": ["MY-APP"]})
    other = {"operationName": "Microsoft.Compute/virtualMachines/write", "resourceUri": vmss("w")}
    assert request_from_resource_write("e", vmss("w"), other, cfg).ignored is not None
    own = {"operationName": "Microsoft.Compute/virtualMachineScaleSets/write", "resourceUri": vmss("w"),
           "claims": {"appid": "my-app"}}
    assert "ignored caller my-app" in (request_from_resource_write("e", vmss("w"), own, cfg).ignored or "")


# ---------------------------------------------------------------------------------------------- control rules
def test_busy_targets_are_refused_by_default_with_the_holder_named() -> None:
    d = on_busy_targets([(vmss("web"), "r-7", "2026-01-01T00:00:00")], RolloutPolicy(), 0)
    assert d.kind == "refused" and "web by rollout r-7" in d.reason and d.data["retry_minutes"] is None


def test_busy_targets_queue_until_the_wait_runs_out() -> None:
    policy = RolloutPolicy(on_busy="queue", busy_wait_minutes=30, busy_retry_minutes=10)
    assert on_busy_targets([("x/a", "r", "t")], policy, 20).data["retry_minutes"] == 10
    late = on_busy_targets([("x/a", "r", "t")], policy, 30)
    assert late.kind == "refused" and "waited 30 minutes >= busy_wait_minutes 30" in late.reason


def test_gate_outcomes_say_who_and_what_follows() -> None:
    p = RolloutPolicy(approval_required=True, approval_timeout_minutes=60)
    assert gate_outcome("approved", {"by": "ann"}, p, 12).reason == "approved by ann after 12 minutes"
    assert gate_outcome("aborted", {"by": "bo", "reason": "freeze"}, p, 3).data["proceed"] is False
    halt = gate_outcome("timed_out", None, p, 60)
    assert halt.data["proceed"] is False and "approval_timeout_minutes 60" in halt.reason
    go = gate_outcome("timed_out", None, p.model_copy(update={"on_approval_timeout": "proceed"}), 60)
    assert go.data["proceed"] is True


def test_default_policy_has_no_gate_and_refuses_busy_targets() -> None:
    p = RolloutPolicy()
    assert p.approval_required is False and p.on_busy == "refuse" and p.on_approval_timeout == "halt"


# ---------------------------------------------------------------------------------------------- schema, publish
def test_published_json_schema_is_in_step_with_the_model() -> None:
    published = json.loads((ROOT / "docs/rollout-request.schema.json").read_text(encoding="utf-8"))
    assert published == request_json_schema(), "run: shadow-rollout schema --out docs/rollout-request.schema.json"


def test_schema_describes_every_field_of_the_request() -> None:
    props = request_json_schema()["properties"]
    assert set(props) == {"rollout_id", "targets", "change", "policy", "requester", "source", "origin", "channel",
                          "claimed_requester"}
    assert props["source"]["enum"] == ["api", "cli", "pipeline", "http", "service-bus", "azure-devops",
                                       "app-configuration", "resource-write"]


def test_published_message_id_is_the_rollout_id_for_duplicate_detection() -> None:
    req = parse_request({"rollout_id": "rel-1", "targets": [vmss("w")], "change": {"change_id": "c"}})
    m = message_of(req)
    assert m["message_id"] == "rel-1" and m["application_properties"]["rollout_id"] == "rel-1"
    assert json.loads(m["body"])["rollout_id"] == "rel-1"


@pytest.mark.parametrize(("event", "code"), [
    ({"type": "rollout.finished", "state": "completed"}, OK),
    ({"type": "rollout.finished", "state": "halted"}, FAILED),
    ({"type": "rollout.halted"}, FAILED),
    ({"type": "rollout.rejected"}, FAILED),
    ({"type": "rollout.rollback"}, None),
])
def test_outcome_events_decide_the_waiting_pipeline(event: dict[str, Any], code: int | None) -> None:
    assert exit_code_for(event) == code
    if event["type"] != "rollout.finished":  # waiting until production is done decides the same on these
        assert exit_code_for(event, "production_done") == code


def test_production_done_ends_the_wait_only_when_waiting_for_it() -> None:
    event = {"type": "rollout.production_done"}
    assert exit_code_for(event, "production_done") == OK
    assert exit_code_for(event, "finished") is None
