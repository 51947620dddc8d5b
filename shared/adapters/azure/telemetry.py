"""The Telemetry port over Azure Monitor: platform metrics (MetricsClient) and Log Analytics (LogsQueryClient).

Windows are always absolute (start, end) taken from the rollout's clock, never a duration, which the SDKs
would resolve against the machine's clock. The KQL lives in ``queries/*.kql``, one named query per file.

The calls go through each client's ``send_request`` (the clients' own pipeline: credential, retry, pacing) and
read the JSON answer directly, once (``stream=True`` keeps azure-core's content-decode policy from parsing it a
first time for nobody). The clients' ``query_resources`` and ``query_workspace`` build a typed model of every
data point (two model layers, an isodate parse per timestamp: about 0.1 ms a point); a production check reads
each changed VM's last minutes of four metrics (10,000 VMs x 4 metrics x a 15-minute window: 600,000 points,
about a minute of CPU per check) for values this module turns into arrays at once. The requests are the ones
those methods send (same path, query parameters and body: metrics ``POST /subscriptions/{id}/metrics:getBatch``
with ``{"resourceids": [...]}``, learn.microsoft.com/azure/azure-monitor/metrics/migrate-to-batch-api, at the
api-version the client sends; logs ``POST /v1/workspaces/{id}/query`` with ``query`` and ``timespan``,
learn.microsoft.com/rest/api/loganalytics/dataaccess/query/execute). ``send_request`` is the generated clients'
documented way to send a request of one's own through their pipeline (aka.ms/azsdk/dpcodegen/python/send_request).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
from azure.core.rest import HttpRequest
from azure.monitor.query import LogsQueryClient
from azure.monitor.querymetrics import MetricAggregationType, MetricsClient

from ...domain.errors import ShadowRolloutError, TransientError
from ...domain.model import SIGNALS, SignalFrame
from ...ports import Telemetry
from .clients import AzureSettings
from .errors import azure_errors

METRICS_API_VERSION = "2024-02-01"
"""The Metrics Batch api-version (the one azure-monitor-querymetrics sends)."""
METRICS_PER_CALL = 50
"""The metrics batch API takes at most 50 resources per call, of one subscription, region and resource type."""
NAMESPACE = "Microsoft.Compute/virtualMachines"
UNIFORM_NAMESPACE = "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"
"""Uniform scale-set instances are their own metric resource type (supported-metrics reference)."""


def metric_batches(ids: Sequence[str], regions: Sequence[str] | None = None) -> list[tuple[str, str, list[int]]]:
    """Rows of ``ids`` in getBatch calls as (region, resource type, rows): one subscription, one region and one
    resource type per call, at most 50 each. ``regions``: each VM's region (None: all in one)."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for r, v in enumerate(ids):
        low = v.lower()
        kind = UNIFORM_NAMESPACE if "/virtualmachinescalesets/" in low and "/virtualmachines/" in low else NAMESPACE
        region = regions[r] if regions is not None else ""
        groups.setdefault((low.strip("/").split("/")[1], region, kind), []).append(r)
    return [(region, kind, rows[a:a + METRICS_PER_CALL]) for (_, region, kind), rows in groups.items()
            for a in range(0, len(rows), METRICS_PER_CALL)]
PLATFORM_METRICS = {
    "Percentage CPU": ("cpu_pct", MetricAggregationType.AVERAGE),
    "Available Memory Percentage": ("mem_available_pct", MetricAggregationType.AVERAGE),
    "Network In Total": ("net_bytes", MetricAggregationType.TOTAL),
    "Network Out Total": ("net_bytes", MetricAggregationType.TOTAL),
}
LOG_QUERIES = {"error_counts": "error_count", "health_probes": "health_ok"}


@cache
def query_text(name: str) -> str:
    """A named KQL query from ``queries/<name>.kql``."""
    return resources.files(__package__).joinpath("queries", f"{name}.kql").read_text(encoding="utf-8")


def render_query(name: str, vm_ids: Sequence[str]) -> str:
    return query_text(name).replace("{vm_ids}", json.dumps([v.lower() for v in vm_ids]))


class AzureTelemetry(Telemetry):
    def __init__(self, settings: AzureSettings, metrics: MetricsClient | None = None,
                 logs: LogsQueryClient | None = None) -> None:
        self.settings = settings
        self._metrics = metrics
        self._logs = logs
        self._regional: dict[str, MetricsClient] = {}
        self._region_of: dict[str, str] = {}
        """VM or scale set id (lower) -> its region, learnt from ARM when the fleet spans several regions."""

    @property
    def metrics(self) -> MetricsClient:
        """The metrics client of ``location``'s region."""
        if self._metrics is None:
            s = self.settings
            self._metrics = MetricsClient(s.metrics_url, s.credential(), **s.client_kwargs())
        return self._metrics

    def metrics_for(self, region: str) -> MetricsClient:
        """The metrics client of ``region``'s endpoint (one per region)."""
        s = self.settings
        if not region or region.lower() == s.location.lower():
            return self.metrics
        if region not in self._regional:
            self._regional[region] = MetricsClient(s.metrics_endpoint(region), s.credential(), **s.client_kwargs())
        return self._regional[region]

    def regions_of(self, ids: Sequence[str]) -> list[str] | None:
        """Each VM's region when the fleet spans several (``settings.regions``); None when it is in one.

        Learnt once from ARM's list-by-location of VMs and scale sets in each configured region (a few paged
        reads, not one per VM), again when a VM is not found; a VM in none of them is an error naming it."""
        configured = [r for r in self.settings.regions if r]
        if len(set(x.lower() for x in [self.settings.location, *configured])) <= 1:
            return None
        out = [self._known_region(v) for v in ids]
        if any(r is None for r in out):
            self._learn_regions([self.settings.location, *configured])
            out = [self._known_region(v) for v in ids]
        missing = [v for v, r in zip(ids, out, strict=True) if r is None]
        if missing:
            raise ShadowRolloutError(f"{missing[0]} is in none of the configured regions ({', '.join(configured)}): "
                                     "add its region to SHADOW_ROLLOUT_REGIONS")
        return [r for r in out if r is not None]

    def _known_region(self, vm_id: str) -> str | None:
        low = vm_id.lower()
        if low in self._region_of:
            return self._region_of[low]
        if "/virtualmachinescalesets/" in low and "/virtualmachines/" in low:
            return self._region_of.get(low.rsplit("/virtualmachines/", 1)[0])
        return None

    def _learn_regions(self, regions: Sequence[str]) -> None:
        from azure.mgmt.compute import ComputeManagementClient

        s = self.settings
        client = ComputeManagementClient(s.credential(), s.subscription_id, base_url=s.arm_url, **s.client_kwargs())
        for region in dict.fromkeys(regions):
            with azure_errors("list_by_location", region):
                for vm in client.virtual_machines.list_by_location(region):
                    self._region_of[str(vm.id).lower()] = region
                for ss in client.virtual_machine_scale_sets.list_by_location(region):
                    self._region_of[str(ss.id).lower()] = region

    @property
    def logs(self) -> LogsQueryClient:
        if self._logs is None:
            s = self.settings
            self._logs = LogsQueryClient(s.credential(), endpoint=s.logs_url, **s.client_kwargs())
        return self._logs

    def signals(self, vm_ids: Sequence[str], start: datetime, end: datetime) -> SignalFrame:
        first = start.replace(second=0, microsecond=0)
        width = max(0, int((end.replace(second=0, microsecond=0) - first) / timedelta(minutes=1)))
        ids = list(vm_ids)
        out = {k: np.full((len(ids), width), np.nan) for k in SIGNALS}
        if not ids or width == 0:
            return SignalFrame(ids, first, {k: np.zeros((len(ids), width)) for k in SIGNALS})
        row = {v.lower(): r for r, v in enumerate(ids)}
        self._platform_metrics(ids, start, end, first, width, out)
        self._log_signals(ids, row, start, end, first, width, out)
        return SignalFrame(ids, first, out)

    def apply_results(self, vm_ids: Sequence[str], start: datetime, end: datetime) -> dict[str, str]:
        """The last status ARM recorded for the change on each VM (``Succeeded``, ``Failed``...), from the
        Activity log; VMs with no record are absent."""
        ids = list(vm_ids)
        if not ids:
            return {}
        with azure_errors("query_logs", "apply_results"):
            tables = self._query_logs("apply_results", ids, start, end)
        by_lower = {v.lower(): v for v in ids}
        out: dict[str, str] = {}
        for table in tables:
            for rec in table.get("rows") or []:
                vm = by_lower.get(str(rec[0]).lower())
                if vm is not None and rec[2] is not None:
                    out[vm] = str(rec[2])
        return out

    def _get_batch(self, client: MetricsClient, batch: list[str], namespace: str, start: datetime,
                   end: datetime) -> list[dict[str, Any]]:
        """One metrics getBatch call: the answer's ``values``, one per resource in request order."""
        sub = batch[0].strip("/").split("/")[1]
        aggregations = ",".join(sorted({str(agg.value) for _, agg in PLATFORM_METRICS.values()}))
        request = HttpRequest("POST", f"/subscriptions/{sub}/metrics:getBatch", json={"resourceids": batch}, params={
            "api-version": METRICS_API_VERSION, "starttime": _iso(start), "endtime": _iso(end), "interval": "PT1M",
            "metricnamespace": namespace, "metricnames": ",".join(n.replace(",", "%2") for n in PLATFORM_METRICS),
            "aggregation": aggregations})
        response = client.send_request(request, stream=True)  # decoded once, here (see the module's docstring)
        response.read()
        response.raise_for_status()
        values: list[dict[str, Any]] = response.json()["values"]
        return values

    def _query_logs(self, name: str, ids: list[str], start: datetime, end: datetime) -> list[dict[str, Any]]:
        """One Log Analytics query: the answer's tables. A partial answer (an ``error`` beside the tables) is
        transient, as the client's ``LogsQueryStatus.PARTIAL`` was."""
        request = HttpRequest("POST", f"/workspaces/{self.settings.workspace_id}/query", json={
            "query": render_query(name, ids), "timespan": f"{_iso(start)}/{_iso(end)}", "workspaces": None})
        response = self.logs.send_request(request, stream=True)
        response.read()
        response.raise_for_status()
        payload: dict[str, Any] = response.json()
        if payload.get("error"):
            raise TransientError(f"log query {name} answered partially", operation="query_logs")
        tables: list[dict[str, Any]] = payload.get("tables") or []
        return tables

    def _platform_metrics(self, ids: list[str], start: datetime, end: datetime, first: datetime, width: int,
                          out: dict[str, np.ndarray]) -> None:
        net_seen = np.zeros((len(ids), width), dtype=bool)
        net = np.zeros((len(ids), width))
        columns = _Columns(first, width)
        for region, namespace, rows in metric_batches(ids, self.regions_of(ids)):
            batch = [ids[r] for r in rows]
            with azure_errors("query_metrics", batch[0]):
                results = self._get_batch(self.metrics_for(region), batch, namespace, start, end)
                if len(results) != len(batch):
                    raise TransientError(f"metrics for {len(batch)} VMs answered {len(results)} results",
                                         operation="query_metrics")
                for r, result in zip(rows, results, strict=True):  # results come in request order
                    for metric in result.get("value") or []:
                        signal, agg = PLATFORM_METRICS[metric["name"]["value"]]
                        key = str(agg.value).lower()
                        for series in metric.get("timeseries") or []:
                            for point in series.get("data") or []:
                                value = point.get(key)
                                k = columns.of(point["timeStamp"]) if value is not None else None
                                if k is None:
                                    continue
                                if signal == "net_bytes":
                                    net[r, k] += value
                                    net_seen[r, k] = True
                                else:
                                    out[signal][r, k] = value
        out["net_bytes"] = np.where(net_seen, net, np.nan)

    def _log_signals(self, ids: list[str], row: dict[str, int], start: datetime, end: datetime, first: datetime,
                     width: int, out: dict[str, np.ndarray]) -> None:
        columns = _Columns(first, width)
        for name, signal in LOG_QUERIES.items():
            with azure_errors("query_logs", name):
                tables = self._query_logs(name, ids, start, end)
                for table in tables:
                    for rec in table.get("rows") or []:
                        r = row.get(str(rec[0]).lower())
                        k = columns.of(rec[1])
                        if r is not None and k is not None and rec[2] is not None:
                            out[signal][r, k] = float(rec[2])


class _Columns:
    """Timestamp text -> column of a window (each distinct timestamp parsed once per call)."""

    def __init__(self, first: datetime, width: int) -> None:
        self.first, self.width = first, width
        self._seen: dict[Any, int | None] = {}

    def of(self, ts: Any) -> int | None:
        try:
            return self._seen[ts]
        except KeyError:
            k = self._seen[ts] = _column(ts, self.first, self.width)
            return k
        except TypeError:  # unhashable: not a timestamp
            return _column(ts, self.first, self.width)


def _iso(t: datetime) -> str:
    """A time as the SDKs write it on the wire (azure-core's ``Serializer.serialize_iso``: UTC, at least
    milliseconds, ``Z``)."""
    u = t.astimezone(UTC) if t.tzinfo else t
    fraction = str(u.microsecond).rjust(6, "0").rstrip("0").ljust(3, "0")
    return u.strftime("%Y-%m-%dT%H:%M:%S.") + fraction + "Z"


def _column(ts: Any, first: datetime, width: int) -> int | None:
    if not isinstance(ts, datetime):
        ts = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    k: float = (ts - first) / timedelta(minutes=1)
    col = round(k)
    if not math.isclose(k, col, abs_tol=1e-6) or not 0 <= col < width:
        return None
    return col
