"""What the Durable Task extension does around the Python SDK, so that the local runner does it too.

Each rule below is the extension's (or the Durable Task Framework's, which the extension runs on) behaviour
that a locally green orchestration could otherwise miss; each cites where it is defined:

- [ext-trigger] Azure/azure-functions-durable-extension, src/WebJobs.Extensions.DurableTask/Bindings/
  OrchestrationTriggerAttributeBindingProvider.cs, ``OrchestrationContextToString``: the orchestration payload
  carries ``upperSchemaVersion`` (V2), ``upperSchemaVersionNew`` (V3) and the storage provider's
  ``maximumShortTimerDuration`` / ``longRunningTimerIntervalDuration``.
- [timers] learn.microsoft.com/azure/azure-functions/durable/durable-functions-timers, "Timer limitations":
  Python timers are limited to six days; longer ones are implemented as a series of shorter timers (3 days).
  The extension refuses a longer single timer (``ThrowIfInvalidTimerLengthForStorageProvider``, called from
  OutOfProcOrchestrationShim.cs for every CreateTimer action).
- [dtfx-ctx] Azure/durabletask, src/DurableTask.Core/TaskOrchestrationContext.cs, ``HandleTaskScheduledEvent``,
  ``HandleTimerCreatedEvent``, ``HandleSubOrchestrationCreatedEvent``: a replay whose actions do not match the
  history by sequence number, kind and name throws ``NonDeterministicOrchestrationException``; the instance
  then fails with the output "Non-Deterministic workflow detected: ...".
- [ext-activity] Azure/azure-functions-durable-extension, src/WebJobs.Extensions.DurableTask/Listener/
  TaskActivityShim.cs, ``RunAsync``: a failed activity reaches the orchestrator as a TaskFailed event whose
  reason is "Activity function '<name>' failed: <message>" and whose details are the serialised exception.
- [ext-ooproc] Same repository, Listener/OutOfProcOrchestrationShim.cs, ``ScheduleDurableTaskEvents``: a failed
  out-of-process orchestrator fails with "Orchestrator function '<name>' failed: <error>"; a parent awaiting it
  as a sub-orchestration sees that reason.
- [sdk-payload] azure-functions, azure/functions/durable_functions.py, ``ActivityTriggerConverter``: the worker
  decodes an activity's input with ``df_loads`` (a non-JSON string is passed as it is) and encodes its result
  with ``df_dumps``; a result that cannot be encoded fails the activity.
- [sdk-client] azure-functions-durable, models/DurableOrchestrationClient.py, ``raise_event``: the webhook's 404
  becomes "No instance with ID <id> found.", its 410 (the instance completed, failed or was terminated)
  "Instance with ID <id> is gone: either completed or failed".
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from azure.durable_functions.models.utils.df_serialization import df_dumps, df_loads

UPPER_SCHEMA_VERSION = 1  # ReplaySchema.V2, as the C# enum serialises [ext-trigger]
UPPER_SCHEMA_VERSION_NEW = 2  # ReplaySchema.V3 [ext-trigger]
MAXIMUM_SHORT_TIMER = timedelta(days=6)  # Azure Storage provider [timers]
LONG_TIMER_INTERVAL = timedelta(days=3)  # [timers]
NON_DETERMINISTIC = "Non-Deterministic workflow detected: "


def timespan(d: timedelta) -> str:
    """A .NET TimeSpan as Newtonsoft writes it (``d.hh:mm:ss``), which the SDK parses."""
    seconds = int(d.total_seconds())
    days, rest = divmod(seconds, 86_400)
    return f"{days}.{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def context_fields() -> dict[str, Any]:
    """The fields the extension adds to every orchestration payload besides history and input [ext-trigger]."""
    return {"upperSchemaVersion": UPPER_SCHEMA_VERSION, "upperSchemaVersionNew": UPPER_SCHEMA_VERSION_NEW,
            "maximumShortTimerDuration": timespan(MAXIMUM_SHORT_TIMER),
            "longRunningTimerIntervalDuration": timespan(LONG_TIMER_INTERVAL)}


class InstanceNotFound(Exception):
    """The client's answer to an event for an instance that does not exist (HTTP 404) [sdk-client]."""


class InstanceGone(Exception):
    """The client's answer to an event for an instance that completed, failed or was terminated (410)."""


class NonDeterministicOrchestration(Exception):
    """A replay scheduled something other than the history says it did [dtfx-ctx]."""


def not_found(instance_id: str) -> InstanceNotFound:
    return InstanceNotFound(f"No instance with ID {instance_id} found.")


def gone(instance_id: str) -> InstanceGone:
    return InstanceGone(f"Instance with ID {instance_id} is gone: either completed or failed")


def activity_failure(name: str, exc: BaseException) -> tuple[str, str]:
    """(reason, details) of the TaskFailed event for an activity that raised ``exc`` [ext-activity]."""
    message = f"{type(exc).__name__}: {exc}"
    details = json.dumps({"ClassName": type(exc).__name__, "Message": str(exc)})
    return f"Activity function '{name}' failed: {message}", details


def orchestrator_failure(name: str, error: str) -> str:
    """The failure reason of an orchestrator, as its parent and its status see it [ext-ooproc]."""
    return f"Orchestrator function '{name}' failed: {error}"


def decode_activity_input(text: str | None) -> Any:
    """An activity's input as the worker hands it to the function [sdk-payload]."""
    if text is None:
        return None
    try:
        return df_loads(text)
    except json.JSONDecodeError:
        return text


def encode_activity_output(value: Any) -> str:
    """An activity's result as the worker returns it; raises ValueError as the worker does [sdk-payload]."""
    try:
        return str(df_dumps(value))
    except TypeError as exc:
        raise ValueError(f"activity trigger output must be json serializable ({value})") from exc


def dumps(value: Any) -> str:
    """Orchestration inputs and outputs, serialised as the SDK does."""
    return str(df_dumps(value))


KIND_ACTIVITY, KIND_TIMER, KIND_SUB = "activity task", "timer task", "sub-orchestration task"
SCHEDULED_KINDS = {4: KIND_ACTIVITY, 10: KIND_TIMER, 7: KIND_SUB}  # TaskScheduled, TimerCreated, SubOrchCreated


def check_determinism(history: list[dict[str, Any]], replayed: dict[int, tuple[str, str]]) -> str | None:
    """The non-determinism a replay shows against its history, worded as DTFx words it, or None [dtfx-ctx].

    ``replayed`` maps each sequence number the replay scheduled to (kind, name). Every TaskScheduled,
    TimerCreated and SubOrchestrationInstanceCreated event of the history must find the same kind and
    (case-insensitively) the same name at its EventId.
    """
    for e in history:
        kind = SCHEDULED_KINDS.get(int(e["EventType"]))
        if kind is None:
            continue
        tid = int(e["EventId"])
        name = str(e.get("Name") or "")
        got = replayed.get(tid)
        suffix = " Was a change made to the orchestrator code after this instance had already started running?"
        if got is None:
            return (f"A previous execution of this orchestration scheduled a {kind} with sequence ID {tid}"
                    + (f" and name '{name}'" if name else "")
                    + ", but the current replay execution hasn't (yet?) scheduled this task." + suffix)
        got_kind, got_name = got
        if got_kind != kind:
            return (f"A previous execution of this orchestration scheduled a {kind} with sequence number {tid}"
                    + (f" named '{name}'" if name else "")
                    + f", but the current orchestration replay instead produced a {got_kind} with this sequence "
                    "number." + suffix)
        if kind != KIND_TIMER and got_name.lower() != name.lower():
            return (f"A previous execution of this orchestration scheduled a {kind} with sequence number {tid} "
                    f"named '{name}', but the current orchestration replay instead scheduled a {got_kind} named "
                    f"'{got_name}' with this sequence number." + suffix)
    return None
