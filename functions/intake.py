"""Intake bindings: Service Bus topic and Event Grid triggers. Each parses its binding object, calls a handler in
shared.intake.service and logs the result; a rejected input returns normally, so the message is completed (not
retried ten times) and the rejection is recorded there. Only errors a retry can fix are raised.
"""

from __future__ import annotations

import logging

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
    log.log(level, "%s: %s (%s) %s", what, result.outcome, result.rollout_id or "-", result.reason)


@bp.function_name("intake_service_bus")
@bp.service_bus_topic_trigger(arg_name="msg", topic_name=REQUESTS_TOPIC, subscription_name=REQUESTS_SUBSCRIPTION,
                              connection=SERVICE_BUS_CONNECTION)
@bp.durable_client_input(client_name="client")
async def intake_service_bus(msg: func.ServiceBusMessage, client: df.DurableOrchestrationClient) -> None:
    result = await service.from_service_bus(msg.get_body(), message_id=msg.message_id, orch=orchestrations(client),
                                            svc=services(), config=load_intake_config())
    _log(result, f"service bus message {msg.message_id} (delivery {msg.delivery_count})")


@bp.function_name("intake_event_grid")
@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def intake_event_grid(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    result = await service.from_event_grid(event_id=event.id, event_type=event.event_type, subject=event.subject or "",
                                           topic=event.topic or "", data=event.get_json(),
                                           orch=orchestrations(client), svc=services(), config=load_intake_config())
    _log(result, f"event grid {event.event_type} {event.id}")
