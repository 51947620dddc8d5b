"""The telemetry adapter sends, through the clients' ``send_request``, the very requests the clients' typed methods
(``MetricsClient.query_resources``, ``LogsQueryClient.query_workspace``) send, and reads their JSON answers with
the same care: an answer short of results or partial is transient, never silently partial signals."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from shared.adapters.azure.telemetry import PLATFORM_METRICS, UNIFORM_NAMESPACE, render_query
from shared.adapters.simulator.adapters import to_datetime
from shared.adapters.simulator.standin.base import ScriptedFault
from shared.domain.errors import TransientError

from .conftest import API, Azure

APIS = [f"{API}/virtualMachines/{k}" for k in range(3)]
START, END = to_datetime(30.0), to_datetime(50.0)


def captured(azure: Azure) -> list[tuple[str, str, dict[str, str], Any]]:
    """Every request the stand-in serves from now on: method, path, query parameters, JSON body."""
    seen: list[tuple[str, str, dict[str, str], Any]] = []
    serve = azure.standin.serve

    def recording(method: str, raw_path: str, body: bytes, headers: Any = None) -> Any:
        parts = urlsplit(raw_path)
        seen.append((method, parts.path, dict(parse_qsl(parts.query)), json.loads(body) if body else None))
        return serve(method, raw_path, body, headers)

    azure.standin.serve = recording  # type: ignore[method-assign]
    return seen


def test_the_metrics_batch_request_is_the_one_the_sdk_client_sends(azure: Azure) -> None:
    azure.world.clock.now = 60.0
    seen = captured(azure)
    azure.telemetry.signals(APIS, START, END)
    ours = [r for r in seen if r[1].endswith("metrics:getBatch")]
    seen.clear()
    azure.telemetry.metrics.query_resources(
        resource_ids=APIS, metric_namespace=UNIFORM_NAMESPACE, metric_names=list(PLATFORM_METRICS),
        timespan=(START, END), granularity=timedelta(minutes=1),
        aggregations=sorted({str(agg.value) for _, agg in PLATFORM_METRICS.values()}))
    assert ours == seen and len(ours) == 1


def test_the_log_query_request_is_the_one_the_sdk_client_sends(azure: Azure) -> None:
    azure.world.clock.now = 60.0
    seen = captured(azure)
    azure.telemetry.signals(APIS, START, END)
    ours = [r for r in seen if r[1].endswith("/query")]
    seen.clear()
    for name in ("error_counts", "health_probes"):
        azure.telemetry.logs.query_workspace(azure.settings.workspace_id, render_query(name, APIS),
                                             timespan=(START, END))
    assert ours == seen and len(ours) == 2


def test_a_metrics_answer_short_of_results_is_transient(azure: Azure) -> None:
    azure.world.clock.now = 60.0
    azure.standin._faults.append(ScriptedFault("POST", r"metrics:getBatch$", 200, {"values": []}))
    with pytest.raises(TransientError, match="metrics for 3 VMs answered 0 results"):
        azure.telemetry.signals(APIS, START, END)


def test_a_partial_log_answer_is_transient(azure: Azure) -> None:
    azure.world.clock.now = 60.0
    partial = {"tables": [{"name": "PrimaryResult", "columns": [], "rows": []}],
               "error": {"code": "PartialError", "message": "some shards did not answer"}}
    azure.standin._faults.append(ScriptedFault("POST", r"/query$", 200, partial))
    with pytest.raises(TransientError, match="log query error_counts answered partially"):
        azure.telemetry.signals(APIS, START, END)


def test_a_malformed_metrics_answer_is_transient_naming_the_call(azure: Azure) -> None:
    azure.world.clock.now = 60.0
    azure.standin._faults.append(ScriptedFault("POST", r"metrics:getBatch$", 200, {"value": "not what was asked"}))
    with pytest.raises(TransientError, match=r"query_metrics .*malformed answer"):
        azure.telemetry.signals(APIS, START, END)
