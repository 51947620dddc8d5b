"""What a rollout tells Azure Monitor: structured logs and counters that carry the rollout id, the orchestration
instance id and the VM id, exported with OpenTelemetry (azure-monitor-opentelemetry).

Nothing happens at import time. The first log or count calls :func:`configure`, which sets up the exporter only
when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set (the Function App's setting): locally and in tests records go
to the ordinary logging handlers and counts to whatever MeterProvider is installed (none: they cost nothing).
docs/operations.md lists the metrics and the log fields and shows how to query them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics

from .domain.request import instance_id_for

CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
"""Set by infra (Application Insights); without it nothing is exported."""
WORKER_TELEMETRY_SETTING = "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"
"""When "true" the Python worker configures Azure Monitor itself; configuring it again would export twice."""
SERVICE_NAME = "shadow-rollout"
LOGGER = "shadow_rollout"
METER = "shadow_rollout"

_lock = threading.Lock()
_configured: bool | None = None
# the library idiom: records reach whatever handlers the application installs, and none means silence rather
# than logging's last-resort handler printing warnings into the CLI's stderr
logging.getLogger(LOGGER).addHandler(logging.NullHandler())


def configure(environ: Mapping[str, str] | None = None) -> bool:
    """Export logs, metrics and traces to Azure Monitor, once per process. True when this call's process exports.

    The exporter authenticates with the identity named by ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` (Entra ID
    ingestion; the component's local auth is off). Once ``shadow_rollout`` loggers export they stop propagating to
    the root logger, whose handler is the Functions host's: the host would ship each record again, without its
    dimensions, and host.json's levels would no longer say what reaches Application Insights.
    """
    global _configured
    with _lock:
        if _configured is not None:
            return _configured
        env = os.environ if environ is None else environ
        connection = env.get(CONNECTION_SETTING, "")
        if not connection or env.get(WORKER_TELEMETRY_SETTING, "").lower() == "true":
            _configured = False
            return False
        try:
            from azure.monitor.opentelemetry import configure_azure_monitor
            from opentelemetry.sdk.resources import Resource

            configure_azure_monitor(
                connection_string=connection,
                logger_name=LOGGER,
                resource=Resource.create({"service.name": SERVICE_NAME}),
                # the Azure SDK's spans show each ARM and Monitor call as a dependency; no web framework runs here
                instrumentation_options={name: {"enabled": False}
                                         for name in ("django", "fastapi", "flask", "psycopg2")},
            )
        except Exception as exc:  # telemetry must never fail a rollout: say so through the host's logging, go on
            logging.getLogger(__name__).warning("Azure Monitor export not configured: %s: %s",
                                                type(exc).__name__, exc)
            _configured = False
            return False
        logger = logging.getLogger(LOGGER)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        _configured = True
        return True


# ---------------------------------------------------------------------------------------------- logs
class RolloutLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger whose records carry ``rollout_id``, ``instance_id`` and, per VM, ``vm_id`` as attributes.

    OpenTelemetry's logging handler turns a record's extra attributes into log attributes, so each field is a
    column of its own in Application Insights (``customDimensions``), not text to parse out of the message.
    """

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs

    def for_vm(self, vm_id: str) -> RolloutLog:
        return RolloutLog(self.logger, {**(self.extra or {}), "vm_id": vm_id})


def rollout_log(rollout_id: str, *, instance_id: str | None = None, vm_id: str | None = None,
                name: str = "rollout") -> RolloutLog:
    """The logger of one rollout. ``instance_id`` defaults to the rollout's top-level orchestration."""
    configure()
    extra: dict[str, str] = {"rollout_id": rollout_id, "instance_id": instance_id or instance_id_for(rollout_id)}
    if vm_id is not None:
        extra["vm_id"] = vm_id
    return RolloutLog(logging.getLogger(f"{LOGGER}.{name}"), extra)


# ---------------------------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class _Instruments:
    shadows: metrics.Counter
    predictions: metrics.Counter
    rollbacks: metrics.Counter
    capacity_changes: metrics.Counter
    borrowed_instances: metrics.UpDownCounter


_instruments: _Instruments | None = None
_provider: metrics.MeterProvider | None = None


def use_meter_provider(provider: metrics.MeterProvider | None) -> None:
    """Count into this provider instead of the global one (tests: an in-memory reader); None goes back."""
    global _instruments, _provider
    with _lock:
        _provider, _instruments = provider, None


def _meter_instruments() -> _Instruments:
    global _instruments
    if _instruments is None:
        configure()
        meter = (_provider or metrics.get_meter_provider()).get_meter(METER)
        _instruments = _Instruments(
            shadows=meter.create_counter(
                "shadow_rollout.shadows_created", unit="{vm}",
                description="Shadow VMs asked for, by outcome: spot, regular (Spot refused) or failed"),
            predictions=meter.create_counter(
                "shadow_rollout.predictions", unit="{vm}",
                description="Production VMs scored before production, by source (model, judge) and decision"),
            rollbacks=meter.create_counter(
                "shadow_rollout.rollbacks", unit="{vm}",
                description="Production VMs rolled back, by state: queued, restored, restore_failed"),
            capacity_changes=meter.create_counter(
                "shadow_rollout.capacity_changes", unit="{change}",
                description="Scale-set capacity changes made for rollbacks, by direction: out, in"),
            borrowed_instances=meter.create_up_down_counter(
                "shadow_rollout.borrowed_instances", unit="{vm}",
                description="Instances added to scale sets ahead of rollbacks and not yet given back"),
        )
    return _instruments


# ---------------------------------------------------------------------------------------------- events
def shadows_created(rollout_id: str, *, spot: int, regular: int, failed: int) -> None:
    """One batch of shadows made: Spot, regular-priced (Spot refused and policy allowed it), or none."""
    m = _meter_instruments()
    for outcome, n in (("spot", spot), ("regular", regular), ("failed", failed)):
        if n:
            m.shadows.add(n, {"rollout_id": rollout_id, "outcome": outcome})
    rollout_log(rollout_id, name="shadows").info(
        "shadows created: %d Spot, %d regular-priced, %d failed", spot, regular, failed,
        extra={"shadows_spot": spot, "shadows_regular": regular, "shadows_failed": failed})


def predictions_made(rollout_id: str, scored: Iterable[tuple[str, bool]], *, outcome: str) -> None:
    """Every production VM's prediction: ``(source, skipped)`` pairs; ``outcome`` is halt, dry_run or production."""
    by = Counter((source.split(" ", 1)[0], skipped) for source, skipped in scored)
    m = _meter_instruments()
    for (source, skipped), n in sorted(by.items()):
        m.predictions.add(n, {"rollout_id": rollout_id, "source": source, "decision": "skip" if skipped else
                              "proceed"})
    total, skipped_n = sum(by.values()), sum(n for (_, s), n in by.items() if s)
    rollout_log(rollout_id, name="decide").info(
        "predictions for %d VMs: %d skipped, outcome %s", total, skipped_n, outcome,
        extra={"predicted_vms": total, "skipped_vms": skipped_n, "decision": outcome})


def rollback_queued(rollout_id: str, vm_id: str, reason: str) -> None:
    _meter_instruments().rollbacks.add(1, {"rollout_id": rollout_id, "state": "queued"})
    rollout_log(rollout_id, vm_id=vm_id, name="rollback").info("rollback queued: %s", reason)


def rollback_finished(rollout_id: str, vm_id: str, *, ok: bool, message: str = "") -> None:
    state = "restored" if ok else "restore_failed"
    _meter_instruments().rollbacks.add(1, {"rollout_id": rollout_id, "state": state})
    log = rollout_log(rollout_id, vm_id=vm_id, name="rollback")
    if ok:
        log.info("restored from its pre-change snapshot", extra={"rollback_state": state})
    else:
        log.error("restore failed: %s", message or "no reason given", extra={"rollback_state": state})


def capacity_changed(rollout_id: str, scale_set: str, *, before: int, after: int, reason: str) -> None:
    """A scale set's capacity changed for rollbacks: out ahead of them, back in once none is pending."""
    if after == before:
        return
    m = _meter_instruments()
    direction = "out" if after > before else "in"
    m.capacity_changes.add(1, {"rollout_id": rollout_id, "scale_set": scale_set, "direction": direction})
    m.borrowed_instances.add(after - before, {"rollout_id": rollout_id, "scale_set": scale_set})
    rollout_log(rollout_id, name="capacity").info(
        "scale set %s scaled %s from %d to %d: %s", scale_set, direction, before, after, reason,
        extra={"scale_set": scale_set, "capacity_before": before, "capacity_after": after})
