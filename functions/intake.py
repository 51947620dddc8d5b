"""Intake bindings: Service Bus topic and Event Grid triggers. Each parses its binding object, calls a handler in
shared.intake.service and logs the result. Only errors a retry can fix are raised.

Poison messages: the Python binding (azure-functions 1.x) cannot settle a message, so it cannot dead-letter one
with a reason; the SDK-type binding that can (azurefunctions-extensions-bindings-servicebus) is still a beta
(1.0.0b2). The documented equivalent (docs/intake.md, "Poison messages"): a rejected message returns normally, so
the host completes it instead of redelivering it until MaxDeliveryCount, and its rejection is kept in the rollout
store (partition ``_intake``, with the message id, the reason and an excerpt) and published as a
``rollout.rejected`` outcome event carrying the reason.
"""

from __future__ import annotations

import logging
import os

import azure.durable_functions as df
import azure.functions as func

from shared.bootstrap import orchestrations, services
from shared.intake import service
from shared.intake.config import load_intake_config

bp = df.Blueprint()
log = logging.getLogger("shadow_rollout.intake")

# App settings (identity-based connection): ServiceBusConnection__fullyQualifiedNamespace, and the names below.
REQUESTS_TOPIC = "%SHADOW_ROLLOUT_REQUESTS_TOPIC%"
REQUESTS_SUBSCRIPTION = "%SHADOW_ROLLOUT_REQUESTS_SUBSCRIPTION%"
SERVICE_BUS_CONNECTION = "ServiceBusConnection"


def _log(result: service.IntakeResult, what: str) -> None:
    level = logging.WARNING if result.outcome == "rejected" else logging.INFO
    log.log(level, "%s: %s (%s) %s", what, result.outcome, result.rollout_id or "-", ascii(result.reason)[:500])


@bp.function_name("intake_service_bus")
@bp.service_bus_topic_trigger(arg_name="msg", topic_name=REQUESTS_TOPIC, subscription_name=REQUESTS_SUBSCRIPTION,
                              connection=SERVICE_BUS_CONNECTION)
@bp.durable_client_input(client_name="client")
async def intake_service_bus(msg: func.ServiceBusMessage, client: df.DurableOrchestrationClient) -> None:
    result = await service.from_service_bus(msg.get_body(), message_id=msg.message_id, orch=orchestrations(client),
                                            svc=services(), config=load_intake_config(),
                                            topic=os.environ.get("SHADOW_ROLLOUT_REQUESTS_TOPIC", ""),
                                            subscription=os.environ.get("SHADOW_ROLLOUT_REQUESTS_SUBSCRIPTION", ""))
    _log(result, f"service bus message {ascii(msg.message_id)[:100]} (delivery {msg.delivery_count})")


@bp.function_name("intake_event_grid")
@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def intake_event_grid(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    result = await service.from_event_grid(event_id=event.id, event_type=event.event_type, subject=event.subject or "",
                                           topic=event.topic or "", data=event.get_json(),
                                           orch=orchestrations(client), svc=services(), config=load_intake_config())
    _log(result, f"event grid {ascii(event.event_type)[:100]} {ascii(event.id)[:100]}")
