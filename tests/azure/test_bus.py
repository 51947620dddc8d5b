"""Rollout requests and outcome events on Service Bus.

No Service Bus emulator can run here, so these tests stop at the sender: the messages are azure-servicebus's
own ``ServiceBusMessage`` objects, handed to a recording sender that stands in for ``ServiceBusSender``
(the one place where a test double replaces the wire; everything else runs over HTTP).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import ServiceBusConnectionError

from shared.adapters.azure.bus import RolloutBus, outcome_message, request_message
from shared.domain.errors import AzureOperationError, RequestError

REQUEST = {"rollout_id": "rel-42-prod", "targets": [
    "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/"
    "virtualMachineScaleSets/web"],
    "change": {"change_id": "cfg-7", "kind": "run-command", "payload": {"script": "echo hi"}},
    "requester": "release pipeline", "source": "pipeline"}


class RecordingSender:
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.sent: list[ServiceBusMessage] = []
        self.fail_with = fail_with

    def send_messages(self, message: ServiceBusMessage) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(message)


def test_request_message_id_is_the_rollout_id_so_a_retried_send_is_deduplicated() -> None:
    a, b = request_message(REQUEST), request_message(dict(REQUEST))
    assert a.message_id == b.message_id == "rel-42-prod"
    assert str(a) == str(b)  # the same body: Service Bus drops the second as a duplicate
    assert a.subject == "rollout-request" and a.content_type == "application/json"
    assert a.application_properties == {"rollout_id": "rel-42-prod", "change_id": "cfg-7", "source": "pipeline"}
    assert json.loads(str(a))["change"]["payload"] == {"script": "echo hi"}


def test_an_invalid_request_is_refused_before_anything_is_sent() -> None:
    sender = RecordingSender()
    with pytest.raises(RequestError, match="targets"):
        RolloutBus(topic="t", sender=sender).publish_request({**REQUEST, "targets": ["not-a-scale-set"]})
    assert sender.sent == []


def test_publish_sends_exactly_one_message_to_the_sender() -> None:
    sender = RecordingSender()
    assert RolloutBus(topic="rollout-requests", sender=sender).publish_request(REQUEST) == "rel-42-prod"
    assert [m.message_id for m in sender.sent] == ["rel-42-prod"]


def test_outcome_events_carry_the_rollout_and_state() -> None:
    msg = outcome_message("rel-42-prod", {"state": "completed", "on_new_config": 60})
    assert msg.message_id == "rel-42-prod:completed" and msg.subject == "rollout-outcome"
    assert json.loads(str(msg)) == {"state": "completed", "on_new_config": 60}
    sender = RecordingSender()
    RolloutBus(topic="rollout-outcomes", sender=sender).publish_outcome("rel-42-prod", {"state": "halted"})
    assert sender.sent[0].application_properties == {"rollout_id": "rel-42-prod", "state": "halted"}


def test_a_service_bus_failure_becomes_the_projects_error() -> None:
    sender = RecordingSender(fail_with=ServiceBusConnectionError(message="no route to namespace"))
    with pytest.raises(AzureOperationError, match="servicebus_send"):
        RolloutBus(topic="t", sender=sender).publish_request(REQUEST)


def test_publish_command_validates_and_prints_the_message_in_a_dry_run(tmp_path: Path) -> None:
    exe = [sys.executable, "-c", "from shared.cli import main; main()"]
    target = REQUEST["targets"][0]
    req = tmp_path / "request.json"
    req.write_text(json.dumps({"rollout_id": "rel-42-prod", "targets": [target],
                               "change": {"change_id": "cfg-7", "payload": {"script": "echo hi"}}}))
    p = subprocess.run([*exe, "publish", str(req), "--dry-run"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["message_id"] == "rel-42-prod" and json.loads(out["body"])["targets"] == [target]
    assert out["application_properties"]["rollout_id"] == "rel-42-prod"
    req.write_text(json.dumps({"rollout_id": "x", "targets": [], "change": {"change_id": "c"}}))
    bad = subprocess.run([*exe, "publish", str(req), "--dry-run"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "request.targets" in bad.stderr and "Traceback" not in bad.stderr
    req.write_text(json.dumps({"rollout_id": "x", "targets": [target], "change": {"change_id": "c"}}))
    none = subprocess.run([*exe, "publish", str(req)], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin"})
    assert none.returncode == 2 and "--namespace" in none.stderr


def test_outcome_events_go_to_the_topic_with_their_own_id_for_duplicate_detection() -> None:
    from shared.adapters.azure.bus import BusOutcomePublisher

    sender = RecordingSender()
    publisher = BusOutcomePublisher(RolloutBus(topic="rollout-outcomes", sender=sender))
    event = {"event_id": "rel-42-prod:finished", "type": "rollout.finished", "rollout_id": "rel-42-prod",
             "state": "halted"}
    publisher.publish(event)
    publisher.publish(dict(event))  # a retry: same message id, so Service Bus drops it
    assert [m.message_id for m in sender.sent] == ["rel-42-prod:finished"] * 2
    props = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
             for k, v in (sender.sent[0].application_properties or {}).items()}
    assert props == {"rollout_id": "rel-42-prod", "type": "rollout.finished"}
    assert json.loads(str(sender.sent[0]))["state"] == "halted"
