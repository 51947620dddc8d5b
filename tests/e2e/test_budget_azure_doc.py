"""bench/README.md's table of throttling on the Azure SDK adapters is the results file's
(bench/results/budget-azure-sdk.json), whose checks were computed from each run's request log; its floor is what
the budget model gives for the served writes, and the rollout never beats it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.adapters.azure.limits import write_floor_seconds

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| ([\d,]+) \| (\w+) \| ([\d,]+) \| ([\d.]+)% \| (\d+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \|$", re.M)


def test_the_readme_table_is_the_azure_sdk_results_file() -> None:
    report = json.loads((ROOT / "bench" / "results" / "budget-azure-sdk.json").read_text())
    text = (ROOT / "bench" / "README.md").read_text()
    section = text.split("## Throttling on the Azure SDK adapters", 1)[1].split("\n## ", 1)[0]
    rows = [(int(r[0].replace(",", "")), r[1], int(r[2].replace(",", "")), float(r[3]), int(r[4]), int(r[5]),
             float(r[6]), float(r[7])) for r in ROW.findall(section)]
    assert rows == [(r["vms"], r["outcome"], r["arm_requests"], round(100 * r["throttled_share"], 2),
                     r["failed_by_throttling"], r["overdrawn_requests"], r["budget_floor_minutes"],
                     r["rollout_minutes"]) for r in report["runs"]]
    for r in report["runs"]:
        assert r["budget_floor_minutes"] == round(write_floor_seconds(r["served_arm_writes"]) / 60.0, 1)
        assert r["rollout_minutes"] >= r["budget_floor_minutes"]
        assert r["met"] == {"no_operation_failed_by_throttling": r["failed_by_throttling"] == 0
                            and r["decisions_naming_throttling"] == 0,
                            "no_bucket_overdrawn": r["overdrawn_requests"] == 0,
                            "throttled_share_at_most_1pct": r["throttled_share"] <= 0.01}
    assert report["command"] in section
