"""``shadow-rollout publish``: send a rollout request to the requests topic and wait for its outcome.

This is what a pipeline runs (docs/examples/azure-pipelines.yml). The request is validated here first, so a
malformed one fails the pipeline step instead of being rejected later by the intake. The message id is the
rollout id, so Service Bus duplicate detection and the intake's instance id both make a re-run idempotent.
Waiting reads the outcomes topic through a subscription filtered on the rollout id (``rollout_id`` application
property), created by the pipeline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .domain.errors import RequestError
from .domain.request import RolloutRequest, parse_request

OK, FAILED, TIMED_OUT = 0, 1, 3


def load_request(path: str, **overrides: Any) -> RolloutRequest:
    """Read a request from a YAML/JSON file (``-`` for stdin is handled by the caller) and apply overrides."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RequestError(f"{path}: not valid YAML/JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RequestError(f"{path}: expected a mapping (got {type(data).__name__})")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return parse_request(data)


def message_of(req: RolloutRequest) -> dict[str, Any]:
    """What goes on the topic, as the bus adapter builds it: body, message id, the properties to filter on."""
    from .adapters.azure.bus import request_message

    msg = request_message(req.model_dump(mode="json"))
    return {"body": str(msg), "message_id": msg.message_id, "content_type": msg.content_type,
            "subject": msg.subject, "application_properties": {
                (k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else v)
                for k, v in (msg.application_properties or {}).items()}}


UNTIL = ("production_done", "finished")


def exit_code_for(event: dict[str, Any], until: str = "finished") -> int | None:
    """What an outcome event means for the waiting pipeline; None: keep waiting (e.g. a rollback was made).

    ``until="production_done"`` succeeds on ``rollout.production_done`` (every wave done; the production watch
    goes on for hours, longer than a hosted pipeline job may wait); ``"finished"`` waits for the very end."""
    kind = event.get("type")
    if kind == "rollout.production_done" and until == "production_done":
        return OK
    if kind == "rollout.finished":
        return OK if event.get("state") == "completed" else FAILED
    if kind in ("rollout.halted", "rollout.aborted", "rollout.rejected"):
        return FAILED
    return None


def send(req: RolloutRequest, *, namespace: str, topic: str) -> None:  # pragma: no cover - needs Service Bus
    from .adapters.azure.bus import RolloutBus

    RolloutBus(topic=topic, fully_qualified_namespace=namespace).publish_request(req.model_dump(mode="json"))


def wait(rollout_id: str, *, namespace: str, topic: str, subscription: str, timeout_minutes: float,
         echo: Callable[[str], None], until: str = "finished") -> int:  # pragma: no cover - needs Service Bus
    """Read outcome events for this rollout until one decides the pipeline's result, or time out."""
    from azure.identity import DefaultAzureCredential
    from azure.servicebus import ServiceBusClient

    deadline = time.monotonic() + timeout_minutes * 60
    with ServiceBusClient(namespace, DefaultAzureCredential()) as client, \
            client.get_subscription_receiver(topic, subscription, max_wait_time=30) as receiver:
        while time.monotonic() < deadline:
            for msg in receiver.receive_messages(max_message_count=20, max_wait_time=30):
                try:
                    event = json.loads(b"".join(msg.body) if not isinstance(msg.body, bytes) else msg.body)
                except (ValueError, TypeError):
                    receiver.complete_message(msg)
                    continue
                receiver.complete_message(msg)
                if not isinstance(event, dict) or event.get("rollout_id") != rollout_id:
                    continue
                echo(f"{event.get('type')}: {event.get('reason')}")
                code = exit_code_for(event, until)
                if code is not None:
                    return code
    return TIMED_OUT
