"""Each trigger, driven with the real ``azure.functions`` objects, through the real Function App and the
orchestrator replayed by the local Durable runner on the simulator."""

from __future__ import annotations

from typing import Any

import pytest

from shared.domain.request import instance_id_for

from .stack import (
    OTHER_SUB,
    devops_event,
    eg_event,
    http,
    intake_config,
    request,
    sb_message,
    stack,
    vmss,
)

MP = pytest.MonkeyPatch


def test_function_app_indexes_every_trigger_with_its_binding_types() -> None:
    import function_app
    from shared.runtime.local_durable import indexed_functions

    bindings = {f.get_function_name(): sorted(b.type for b in f.get_bindings())
                for f in indexed_functions(function_app.app)}
    assert bindings["intake_service_bus"] == ["durableClient", "serviceBusTrigger"]
    assert bindings["intake_event_grid"] == ["durableClient", "eventGridTrigger"]
    for name in ("start_rollout_http", "list_rollouts_http", "rollout_status_http", "approve_rollout_http",
                 "abort_rollout_http"):
        assert bindings[name] == ["durableClient", "http", "httpTrigger"], name
    assert bindings["rollout_orchestrator"] == ["orchestrationTrigger"]
    assert "retrain_failure_model" not in bindings  # the trainer is its own app (trainer/function_app.py)
    for activity in ("start_rollout", "claim_targets", "resolve_gate", "abort_rollout", "finish"):
        assert bindings[activity] == ["activityTrigger"], activity
    sb = next(f for f in indexed_functions(function_app.app) if f.get_function_name() == "intake_service_bus")
    trigger = sb.get_trigger()
    assert trigger.topic_name == "%SHADOW_ROLLOUT_REQUESTS_TOPIC%"  # type: ignore[attr-defined]
    assert trigger.subscription_name == "%SHADOW_ROLLOUT_REQUESTS_SUBSCRIPTION%"  # type: ignore[attr-defined]
    assert trigger.connection == "ServiceBusConnection"  # type: ignore[attr-defined]
    http_fn = next(f for f in indexed_functions(function_app.app) if f.get_function_name() == "start_rollout_http")
    assert str(http_fn.get_trigger().auth_level).lower().endswith("function")  # type: ignore[attr-defined]


def test_devops_deployment_started_message_starts_one_rollout_that_completes(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.deliver(sb_message(devops_event(deployment_id=77), message_id="sb-77"))
        assert s.top_level() == [instance_id_for("devops-77")]
        s.run()
        rec = s.record("devops-77")
        assert rec["state"] == "completed"
        req = rec["request"]
        assert req["source"] == "azure-devops" and req["requester"] == "dana@fabrikam.com"
        assert req["change"] == {"change_id": "web-config-Release-12", "kind": "run-command",
                                 "payload": {"script": "apply-config Release-12"}, "version": "Release-12"}
        assert req["origin"]["deployment_id"] == "77" and req["origin"]["message_id"] == "sb-77"
        assert req["targets"] == [vmss("web"), vmss("api")]
        finished = [e for e in s.outcomes.of("devops-77") if e["type"] == "rollout.finished"]
        assert len(finished) == 1 and finished[0]["state"] == "completed"
        assert s.services.leases.holders([vmss("web"), vmss("api")]) == {}


def test_the_same_message_twice_starts_one_rollout_running_or_finished(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.deliver(sb_message(devops_event(deployment_id=5), message_id="a"))
        s.deliver(sb_message(devops_event(deployment_id=5), message_id="a", delivery_count=2))  # redelivered
        assert s.top_level() == [instance_id_for("devops-5")]
        s.run()
        s.deliver(sb_message(devops_event(deployment_id=5), message_id="b"))  # re-sent after it finished
        assert s.top_level() == [instance_id_for("devops-5")]
        assert s.runner.instances[instance_id_for("devops-5")].generations == 1
        assert len([e for e in s.outcomes.of("devops-5") if e["type"] == "rollout.finished"]) == 1


def test_own_request_message_starts_a_rollout_with_its_message_id(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.deliver(sb_message(request("own-1"), message_id="m-own"))
        s.run()
        rec = s.record("own-1")
        assert rec["state"] == "completed"
        assert rec["request"]["source"] == "service-bus" and rec["request"]["origin"]["message_id"] == "m-own"


def test_out_of_scope_target_starts_nothing_and_says_why(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.deliver(sb_message(request("oos", targets=[vmss("web"), vmss("db", sub=OTHER_SUB)]), message_id="m-oos"))
        assert s.top_level() == []
        assert s.services.store.get_rollout("oos") is None
        [rec] = s.intake_records("rejected").values()
        assert rec["kind"] == "out_of_scope" and rec["rollout_id"] == "oos"
        assert f"db: subscription {OTHER_SUB}, resource group rg-fleet is outside the allowed scope" in rec["reason"]
        [event] = s.outcomes.events
        assert event["type"] == "rollout.rejected" and "outside the allowed scope" in event["reason"]
        status, body = s.request("start_rollout_http", http("POST", "rollouts",
                                                            request("oos", targets=[vmss("x", sub=OTHER_SUB)])))
        assert status == 403 and body["rejected_because"] == "out_of_scope" and "outside" in body["reason"]
        assert s.top_level() == []


def test_scope_on_tags_reads_the_scale_sets_tags_and_rejects_untagged_ones(monkeypatch: MP) -> None:
    cfg = intake_config(scope={"subscriptions": [vmss("web").split("/")[2]], "tags": {"rollout": "shadow"}})
    with stack(monkeypatch, cfg) as s:
        s.world.scale_sets["web"].tags = {"rollout": "shadow"}  # type: ignore[attr-defined]
        s.deliver(sb_message(request("tagged", targets=[vmss("web")]), message_id="t1"))
        s.deliver(sb_message(request("untagged", targets=[vmss("api")]), message_id="t2"))
        assert s.top_level() == [instance_id_for("tagged")]
        [rec] = s.intake_records("rejected").values()
        assert "api: tag rollout=None is not one of ['shadow']" in rec["reason"]


MALFORMED_SB = [
    (b"{not json", "message body is not JSON"),
    ({"rollout_id": "x"}, "request.targets: Field required"),
    ({**request("bad-target"), "targets": ["/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/"
                                           "virtualMachines/vm1"]}, "not a virtual machine scale set resource id"),
    ({**request("bad-policy"), "policy": {"skip_probabilty": 0.2}}, "request.policy.skip_probabilty: unknown key"),
    ({**devops_event(), "eventType": "ms.vss-release.release-created-event"},
     "eventType 'ms.vss-release.release-created-event' is not supported"),
    ({**devops_event(), "resource": {"environment": {"id": 1}, "release": {"id": 3}}},
     "missing resource.environment.name"),
    ([1, 2, 3], "request: expected a JSON object (got list)"),
]


@pytest.mark.parametrize(("body", "reason"), MALFORMED_SB)
def test_malformed_service_bus_message_is_settled_as_rejected_not_retried(monkeypatch: MP, body: Any,
                                                                          reason: str) -> None:
    with stack(monkeypatch) as s:
        s.deliver(sb_message(body, message_id="poison"))  # returns normally: the message is completed
        assert s.top_level() == []
        [rec] = s.intake_records("rejected").values()
        assert rec["kind"] == "malformed" and reason in rec["reason"], rec["reason"]
        assert s.outcomes.events[0]["type"] == "rollout.rejected"


def test_unmapped_release_environment_is_rejected_naming_it(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.deliver(sb_message(devops_event(environment="Staging"), message_id="m-stg"))
        assert s.top_level() == []
        [rec] = s.intake_records("rejected").values()
        assert rec["kind"] == "unmapped"
        assert "no devops route for project 'Fabrikam', release definition 'web-config', environment 'Staging'" \
            in rec["reason"]


def test_missing_intake_configuration_raises_so_the_platform_retries(monkeypatch: MP) -> None:
    from shared.domain.errors import ConfigurationError
    from shared.intake.config import CONFIG_JSON_SETTING

    with stack(monkeypatch) as s:
        monkeypatch.delenv(CONFIG_JSON_SETTING)
        with pytest.raises(ConfigurationError, match="no intake configuration"):
            s.deliver(sb_message(request("r"), message_id="m"))
        assert s.top_level() == [] and s.intake_records("rejected") == {}


APPCONFIG = "Microsoft.AppConfiguration.KeyValueModified"
WRITE = "Microsoft.Resources.ResourceWriteSuccess"


def test_app_configuration_change_starts_one_rollout_of_its_route(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        data = {"key": "web:pool-size", "label": "prod", "etag": "abc123", "syncToken": "x"}
        s.event(eg_event(APPCONFIG, data, event_id="e-1", subject="https://cfg.azconfig.io/kv/web:pool-size"))
        s.event(eg_event(APPCONFIG, data, event_id="e-2"))  # the same modification, delivered again
        [iid] = s.top_level()
        s.run()
        rid = iid.removeprefix("rollout-")
        rec = s.record(rid)
        assert rec["state"] == "completed" and rec["request"]["source"] == "app-configuration"
        assert rec["request"]["change"]["change_id"] == "web:pool-size@abc123"
        assert rec["request"]["targets"] == [vmss("web")]
        s.event(eg_event(APPCONFIG, {"key": "db:conn", "label": "prod", "etag": "e"}, event_id="e-3"))
        assert len(s.top_level()) == 1
        [ignored] = s.intake_records("ignored").values()
        assert "no app_configuration route for key 'db:conn'" in ignored["reason"]


@pytest.mark.parametrize(("event_type", "data", "reason"), [
    (APPCONFIG, {"label": "prod"}, "App Configuration event is missing data.key, data.etag"),
    (APPCONFIG, "not-an-object", "data: expected an object (got str)"),
    (WRITE, {"operationName": "Microsoft.Compute/virtualMachineScaleSets/write", "resourceUri": "/subscriptions/x"},
     "not a virtual machine scale set resource id"),
])
def test_malformed_event_grid_event_is_rejected_with_its_reason(monkeypatch: MP, event_type: str, data: Any,
                                                                reason: str) -> None:
    with stack(monkeypatch) as s:
        s.event(eg_event(event_type, data, event_id="bad"))
        assert s.top_level() == []
        [rec] = s.intake_records("rejected").values()
        assert reason in rec["reason"]


def _write(caller: str = "someone-else") -> dict[str, Any]:
    return {"operationName": "Microsoft.Compute/virtualMachineScaleSets/write", "resourceUri": vmss("api"),
            "correlationId": "c-9", "status": "Succeeded",
            "claims": {"appid": caller, "name": "Erin"}, "authorization": {"evidence": {"principalId": caller}}}


def test_scale_set_model_written_outside_the_tool_is_reported_by_default(monkeypatch: MP) -> None:
    with stack(monkeypatch) as s:
        s.event(eg_event(WRITE, _write(), event_id="w-1", subject=vmss("api")))
        assert s.top_level() == []
        [event] = s.outcomes.events
        assert event["type"] == "rollout.model_change_detected"
        assert "model of api changed outside shadow-rollout by Erin" in event["reason"]
        s.event(eg_event(WRITE, _write("app-of-shadow-rollout"), event_id="w-2", subject=vmss("api")))
        assert len(s.outcomes.events) == 1
        assert any("ignored caller app-of-shadow-rollout" in r["reason"]
                   for r in s.intake_records("ignored").values())
        s.event(eg_event(WRITE, {**_write(), "operationName": "Microsoft.Compute/virtualMachineScaleSets/delete"},
                         event_id="w-3"))
        assert len(s.outcomes.events) == 1


def test_scale_set_model_written_outside_the_tool_starts_a_guarded_rollout_when_policy_says(monkeypatch: MP) -> None:
    from .stack import FAST_POLICY

    cfg = intake_config(resource_writes={"action": "rollout", "policy": FAST_POLICY})
    with stack(monkeypatch, cfg) as s:
        s.event(eg_event(WRITE, _write(), event_id="w-7", subject=vmss("api")))
        s.event(eg_event(WRITE, _write(), event_id="w-7", subject=vmss("api")))
        assert s.top_level() == [instance_id_for("model-w-7")]
        s.run()
        rec = s.record("model-w-7")
        assert rec["state"] == "completed"
        assert rec["request"]["change"]["kind"] == "model-update" and rec["request"]["targets"] == [vmss("api")]
        assert rec["request"]["requester"] == "Erin" and rec["request"]["origin"]["correlation_id"] == "c-9"


def test_a_poison_message_is_settled_once_with_its_rejection_kept_and_published(monkeypatch: MP) -> None:
    """The documented equivalent of dead-lettering (docs/intake.md, "Poison messages"): the binding returns
    normally, so the host completes the message instead of redelivering it, and the rejection is kept with the
    message id and the reason, and published as rollout.rejected."""
    with stack(monkeypatch) as s:
        assert s.call("intake_service_bus", sb_message(b"[" * 5000 + b"]" * 5000, message_id="poison-1")) is None
        [(key, rec)] = s.intake_records("rejected").items()
        assert key == "service-bus:poison-1" and rec["kind"] == "malformed"
        assert "nests 5000 levels deep; at most 32 are accepted" in rec["reason"]
        [event] = s.outcomes.events
        assert event["type"] == "rollout.rejected" and "nests 5000 levels deep" in event["reason"]
        assert s.top_level() == []
