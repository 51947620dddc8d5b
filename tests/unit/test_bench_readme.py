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


def test_the_before_after_table_in_the_bench_readme_is_the_one_its_results_file_renders() -> None:
    from shared.bench.before_after import BEGIN, END, table

    result = json.loads((ROOT / "bench" / "results" / "before-after.json").read_text())
    text = (ROOT / "bench" / "README.md").read_text()
    shown = text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip()
    assert shown == table(result["rows"])
    assert [r["label"] for r in result["rows"]][-1] == "after"


def test_the_documented_before_after_command_line_parses() -> None:
    import re
    import shlex

    from shared.bench.before_after import parser

    text = (ROOT / "bench" / "README.md").read_text().replace("\\\n", " ")
    (line,) = re.findall(r"python -m shared\.bench\.before_after (.+)", text)
    args = parser().parse_args(shlex.split(line))
    assert args.before and args.after.startswith("after=") and args.readme == Path("bench/README.md")
