"""bench/README.md's throttling-at-scale table is the results file's (bench/results/scale-budget.json), and the
floor it reports is what the budget model gives for those writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.adapters.azure.limits import write_floor_seconds

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_table_is_the_results_file() -> None:
    runs = json.loads((ROOT / "bench" / "results" / "scale-budget.json").read_text())["runs"]
    text = (ROOT / "bench" / "README.md").read_text()
    section = text.split("## Throttling at scale", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([\d,]+) \| (\w+) \| ([\d,]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", section, re.M)
    assert [(int(r[0].replace(",", "")), r[1], int(r[2].replace(",", "")), float(r[3]), float(r[4]), float(r[5]))
            for r in rows] == [(r["vms"], r["outcome"], r["arm_writes"], r["budget_floor_minutes"],
                                r["simulated_minutes"], r["throttled_minutes"]) for r in runs]
    for r in runs:
        assert r["budget_floor_minutes"] == round(write_floor_seconds(r["arm_writes"]) / 60.0, 1)
        assert r["simulated_minutes"] >= r["budget_floor_minutes"]
    assert "shadow-rollout bench-scale --sizes 2000,10000 --out bench/results/scale-budget.json" in section
