"""Rollout events on Azure Service Bus: rollout requests in, outcome events out.

A rollout request's ``message_id`` is its rollout id, so a pipeline step that retries a send does not
start a second rollout (Service Bus drops a duplicate id within the entity's duplicate-detection window).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from azure.servicebus import ServiceBusClient, ServiceBusMessage

from ...domain.request import parse_request
from ...ports import OutcomePublisher
from .errors import azure_errors

REQUEST_SUBJECT = "rollout-request"
OUTCOME_SUBJECT = "rollout-outcome"


class MessageSender(Protocol):
    def send_messages(self, message: ServiceBusMessage) -> None: ...


def request_message(request: Mapping[str, Any]) -> ServiceBusMessage:
    """The Service Bus message for a rollout request; the request is validated first (RequestError if not)."""
    req = parse_request(dict(request))
    return ServiceBusMessage(json.dumps(req.model_dump(mode="json"), sort_keys=True), message_id=req.rollout_id,
                             content_type="application/json", subject=REQUEST_SUBJECT,
                             application_properties={"rollout_id": req.rollout_id, "change_id": req.change.change_id,
                                                     "source": req.source})


def outcome_message(rollout_id: str, outcome: Mapping[str, Any]) -> ServiceBusMessage:
    """An outcome event; its id is stable per (rollout, state) so a re-publish is de-duplicated."""
    state = str(outcome.get("state") or outcome.get("outcome") or "finished")
    return ServiceBusMessage(json.dumps(dict(outcome), sort_keys=True, default=str),
                             message_id=f"{rollout_id}:{state}", content_type="application/json",
                             subject=OUTCOME_SUBJECT, application_properties={"rollout_id": rollout_id,
                                                                               "state": state})


class RolloutBus:
    """Sends to one topic. ``sender`` may be given (tests); otherwise one is opened per send."""

    def __init__(self, *, topic: str, fully_qualified_namespace: str = "", connection_string: str = "",
                 sender: MessageSender | None = None) -> None:
        self.topic = topic
        self.namespace = fully_qualified_namespace
        self.connection_string = connection_string
        self._sender = sender

    def publish_request(self, request: Mapping[str, Any]) -> str:
        msg = request_message(request)
        self._send(msg)
        return str(msg.message_id)

    def publish_outcome(self, rollout_id: str, outcome: Mapping[str, Any]) -> str:
        msg = outcome_message(rollout_id, outcome)
        self._send(msg)
        return str(msg.message_id)

    def _send(self, msg: ServiceBusMessage) -> None:
        with azure_errors("servicebus_send", self.topic):
            if self._sender is not None:
                self._sender.send_messages(msg)
                return
            with self._client() as client, client.get_topic_sender(self.topic) as sender:
                sender.send_messages(msg)

    def _client(self) -> ServiceBusClient:
        if self.connection_string:
            return ServiceBusClient.from_connection_string(self.connection_string)
        from azure.identity import DefaultAzureCredential

        return ServiceBusClient(self.namespace, DefaultAzureCredential())


class BusOutcomePublisher(OutcomePublisher):
    """Outcome events on the outcomes topic. The message id is the event's own stable id, so a retried
    publish is dropped by duplicate detection; ``rollout_id`` and ``type`` are properties subscriptions filter on."""

    def __init__(self, bus: RolloutBus) -> None:
        self.bus = bus

    def publish(self, event: dict[str, Any]) -> None:
        msg = ServiceBusMessage(json.dumps(event, sort_keys=True, default=str), message_id=str(event["event_id"]),
                                content_type="application/json", subject=OUTCOME_SUBJECT,
                                application_properties={"rollout_id": str(event.get("rollout_id", "")),
                                                        "type": str(event.get("type", ""))})
        self.bus._send(msg)
