"""Azure Monitor metrics: the batch API (``metrics:getBatch``) over the world's telemetry."""

from __future__ import annotations

import math
from typing import Any

from .base import (
    StandInBase,
    _HttpError,
    _iso,
    _Response,
)


class MetricsBatch(StandInBase):
    """``POST /subscriptions/{sub}/metrics:getBatch``: at most 50 resources of one subscription, region and type."""

    def _metrics_batch(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        ids = body.get("resourceids") if isinstance(body, dict) else None
        if not ids or len(ids) > 50:
            raise _HttpError(400, "BadRequest", "resourceids must list 1 to 50 resources", target="resourceids")
        namespace = query.get("metricnamespace", "")
        # a regional endpoint answers for its region's resources only (the batch API's rule: one subscription,
        # one region, one resource type; https://learn.microsoft.com/azure/azure-monitor/metrics/migrate-to-batch-api)
        region = (match.get("region") or self.world.region).lower()
        for rid in ids:
            where = self.world.region_of(self._row(rid)).lower()
            if where != region:
                raise _HttpError(400, "BadRequest", f"Resource {rid} is in region {where}, not {region}: query it "
                                 f"at https://{where}.metrics.monitor.azure.com (a batch is of one subscription, "
                                 "one region and one resource type).", target="resourceids")
            kind = _metric_type(rid)
            if kind.lower() != namespace.lower():
                raise _HttpError(400, "BadRequest", f"Resource {rid} is of type {kind}, not {namespace!r}: a batch "
                                 "is of one subscription, one region and one resource type.", target="resourceids")
            if rid.strip("/").split("/")[1].lower() != match["sub"].lower():
                raise _HttpError(400, "BadRequest", f"Resource {rid} is not in subscription {match['sub']}: a batch "
                                 "is of one subscription, one region and one resource type.", target="resourceids")
        if query.get("interval", "PT1M") != "PT1M":
            raise _HttpError(400, "BadRequest", "only interval=PT1M is served")
        a, b = self._window(query["starttime"], query["endtime"])
        names = query["metricnames"].split(",")
        sig = self._signals(ids, a, b)
        half = sig["net_bytes"] / 2.0  # In and Out each carry half of the world's traffic
        series = {"Percentage CPU": (sig["cpu_pct"], "average", "Percent"),
                  "Available Memory Percentage": (sig["mem_available_pct"], "average", "Percent"),
                  "Network In Total": (half, "total", "Bytes"), "Network Out Total": (half, "total", "Bytes")}
        for name in names:
            if name not in series:
                raise _HttpError(400, "BadRequest", f"Failed to find metric configuration for provider: "
                                 f"Microsoft.Compute, resource Type: virtualMachines, metric: {name}")
        stamps = [_iso(a + k) for k in range(b - a)]
        rows = {name: series[name][0].tolist() for name in names}  # Python floats: indexing numpy per point is slow
        values = []
        for r, rid in enumerate(ids):
            metrics = []
            for name in names:
                _, agg, unit = series[name]
                data: list[dict[str, Any]] = [{"timeStamp": ts} if math.isnan(x) else {"timeStamp": ts, agg: x}
                                              for ts, x in zip(stamps, rows[name][r], strict=True)]
                metrics.append({"id": f"{rid}/providers/Microsoft.Insights/metrics/{name}", "type":
                                "Microsoft.Insights/metrics", "name": {"value": name, "localizedValue": name},
                                "displayDescription": "", "unit": unit, "errorCode": "Success",
                                "timeseries": [{"metadatavalues": [], "data": data}]})
            values.append({"starttime": _iso(a), "endtime": _iso(b), "interval": "PT1M",
                           "namespace": query.get("metricnamespace", ""), "resourceregion": region,
                           "resourceid": rid, "value": metrics})
        return _Response(200, {"values": values})


def _metric_type(rid: str) -> str:
    """The metric resource type of a VM id: Uniform instances are their own type."""
    low = rid.lower()
    if "/virtualmachinescalesets/" in low and "/virtualmachines/" in low:
        return "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"
    return "Microsoft.Compute/virtualMachines"
