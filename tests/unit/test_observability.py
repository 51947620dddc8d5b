"""Rollout telemetry: the counters and the log fields a whole simulated rollout produces, read back through
OpenTelemetry's own in-memory reader and exporter; and nothing is configured at import time."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.instrumentation.logging.handler import LoggingHandler  # the handler the distro installs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared import observability
from shared.adapters.simulator.scenario import load_scenario
from shared.domain.request import instance_id_for
from shared.scenarios import default_scenario_path
from shared.simulation import SimulationRun, simulate


@dataclass
class Telemetry:
    run: SimulationRun
    points: dict[str, list[tuple[dict[str, Any], float]]]
    logs: list[dict[str, Any]]

    def total(self, metric: str, **attrs: Any) -> float:
        return sum(v for a, v in self.points[metric] if all(a.get(k) == x for k, x in attrs.items()))


@pytest.fixture(scope="module")
def telemetry() -> Iterator[Telemetry]:
    """The bundled scenario (shadows, a skipped stratum, rollbacks, a scale-out and back), recorded in memory."""
    reader = InMemoryMetricReader()
    observability.use_meter_provider(MeterProvider(metric_readers=[reader]))
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    logger = logging.getLogger(observability.LOGGER)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        run = simulate(load_scenario(default_scenario_path()))
        points: dict[str, list[tuple[dict[str, Any], float]]] = defaultdict(list)
        data = reader.get_metrics_data()
        assert data is not None
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for p in metric.data.data_points:
                        points[metric.name].append((dict(p.attributes or {}), float(p.value)))  # type: ignore[union-attr]
        logs = [{"body": str(r.log_record.body), "severity": r.log_record.severity_text,
                 **dict(r.log_record.attributes or {})} for r in exporter.get_finished_logs()]
        yield Telemetry(run, points, logs)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        observability.use_meter_provider(None)


def test_shadows_created_are_counted_by_outcome(telemetry: Telemetry) -> None:
    rid = telemetry.run.rollout_id
    made = telemetry.total("shadow_rollout.shadows_created", rollout_id=rid)
    assert made == len(telemetry.run.world.shadow_rows) > 0
    assert made == sum(telemetry.total("shadow_rollout.shadows_created", rollout_id=rid, outcome=o)
                       for o in ("spot", "regular", "failed"))


def test_every_production_vm_prediction_is_counted_with_its_decision(telemetry: Telemetry) -> None:
    o = telemetry.run.outcome
    rid = telemetry.run.rollout_id
    assert telemetry.total("shadow_rollout.predictions", rollout_id=rid) == o["vms"]["total"]
    assert telemetry.total("shadow_rollout.predictions", decision="skip") == o["vms"]["never_touched"] > 0
    assert {a["source"] for a, _ in telemetry.points["shadow_rollout.predictions"]} <= {"model", "judge"}


def test_rollbacks_are_counted_when_queued_and_when_restored(telemetry: Telemetry) -> None:
    rolled = telemetry.run.outcome["vms"]["rolled_back"]
    assert rolled > 0
    assert telemetry.total("shadow_rollout.rollbacks", state="queued") == rolled
    assert telemetry.total("shadow_rollout.rollbacks", state="restored") == rolled
    assert telemetry.total("shadow_rollout.rollbacks", state="restore_failed") == 0


def test_capacity_changes_are_counted_and_borrowed_instances_given_back(telemetry: Telemetry) -> None:
    assert telemetry.total("shadow_rollout.capacity_changes", direction="out") >= 1
    assert telemetry.total("shadow_rollout.capacity_changes", direction="in") >= 1
    assert telemetry.total("shadow_rollout.borrowed_instances") == 0
    assert max(v for _, v in telemetry.points["shadow_rollout.borrowed_instances"]) == 0  # net, per scale set


def test_every_rollout_log_carries_the_rollout_and_instance_ids(telemetry: Telemetry) -> None:
    rid = telemetry.run.rollout_id
    assert telemetry.logs
    for record in telemetry.logs:
        assert record["rollout_id"] == rid, record
        assert record["instance_id"] == instance_id_for(rid), record


def test_per_vm_logs_carry_the_vm_id(telemetry: Telemetry) -> None:
    items = telemetry.run.services.store.get_items(telemetry.run.rollout_id, "vm")
    rolled = {k for k, v in items.items() if v.get("rollback")}
    queued = {r["vm_id"] for r in telemetry.logs if r["body"].startswith("rollback queued")}
    restored = {r["vm_id"] for r in telemetry.logs if r["body"].startswith("restored")}
    assert queued == restored == rolled
    capacity = [r for r in telemetry.logs if "scaled out" in r["body"]]
    assert capacity and all("vm_id" not in r and r["capacity_after"] > r["capacity_before"] for r in capacity)


def test_nothing_is_configured_without_the_connection_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observability, "_configured", None)
    assert observability.configure({}) is False
    monkeypatch.setattr(observability, "_configured", None)
    on_worker = {observability.CONNECTION_SETTING: "InstrumentationKey=x",
                 observability.WORKER_TELEMETRY_SETTING: "true"}
    assert observability.configure(on_worker) is False, "the worker exports already: configuring again doubles it"


def test_importing_the_app_configures_no_exporter_even_with_the_connection_string() -> None:
    """A failure while importing function_app unregisters every function: telemetry is set up on first use."""
    code = ("import function_app, shared.observability as o\n"
            "from opentelemetry import metrics\n"
            "assert o._configured is None, o._configured\n"
            "print(type(metrics.get_meter_provider()).__name__)")
    env = {**os.environ, observability.CONNECTION_SETTING: "InstrumentationKey=00000000-0000-0000-0000-000000000000"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         check=True)
    assert out.stdout.strip() == "_ProxyMeterProvider"


def test_a_broken_connection_string_leaves_the_rollout_running_without_export(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observability, "_configured", None)
    assert observability.configure({observability.CONNECTION_SETTING: "not a connection string"}) is False
    observability.rollback_queued("r-broken", "vm-1", "health probe failed")  # no exception
