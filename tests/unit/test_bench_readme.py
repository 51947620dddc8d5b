"""bench/README.md's chaos figures are the ones in the results file they cite."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).parents[2]
COLUMNS = ["runs", "redelivered", "crashes", "unknown_state_runs", "leak_runs", "differing_runs", "janitor_runs"]


def test_the_chaos_table_in_the_bench_readme_matches_its_results_file() -> None:
    summary = json.loads((ROOT / "bench" / "results" / "chaos" / "summary.json").read_text())
    chaos = summary["summary"]["shadow-predictive"]["chaos"]
    text = (ROOT / "bench" / "README.md").read_text()
    section = text[text.index("## Under chaos"):]
    rows = [line for line in section.splitlines() if line.startswith("| ") and line[2:3].isdigit()]
    cells = [c.strip().replace(",", "") for c in rows[0].strip("|").split("|")]
    assert [int(c) for c in cells[:len(COLUMNS)]] == [chaos[k] for k in COLUMNS]
