"""Issue #14's before/after table: the same benchmark on the code before and after the fast, safe bake, per corpus.

Each input is a ``bench`` JSON (``--out``) of the same command on the same seeds, from a different commit. The table
takes ``shadow-predictive``'s headline figures and the median and 90th percentile of each phase of its good runs
(:mod:`shared.bench.phases`), and its median good duration against ``linear-alarm``'s with AppConfig's own timing
(first step one interval after the start, the peer in the file) and with the earlier timing (first step at once:
:func:`shared.strategies.linear_alarm.run_at_once`, run here on the same good scenarios and seeds).

Several corpora in one file: repeat ``--scenarios`` with one ``--before`` and one ``--after`` each, in the same
order; every row and every target says its ``corpus`` (the scenarios directory's name). With one corpus, several
``--before`` rows may precede its ``--after``.

    python -m shared.bench.before_after --before ba8f7aa=/tmp/before.json.gz --after after=/tmp/after.json.gz \
        --scenarios bench/heldout-families --out bench/results/before-after.json --readme bench/README.md
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .phases import PHASES, phase_breakdown

STRATEGY = "shadow-predictive"
PEER = "linear-alarm"
BEGIN, END = "<!-- before-after:begin -->", "<!-- before-after:end -->"
IMPAIRED_LIMIT = 1.1
DURATION_LIMIT = 1.5


def load(path: Path) -> dict[str, Any]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        data: dict[str, Any] = json.load(f)
    return data


def at_once_median(bench: dict[str, Any], scenarios: Path) -> float | None:
    """``linear-alarm``'s median good duration had it deployed its first step at once, on the file's good runs."""
    from ..adapters.simulator.scenario import load_scenario
    from ..strategies import linear_alarm

    files = {p.stem: p for p in sorted(scenarios.glob("*.y*ml"))}
    durations = []
    for run in bench["runs"]:
        if run["strategy"] != PEER or run["bench"].get("bad_change") or run["bench"].get("in_sample"):
            continue
        sc = load_scenario(files[run["scenario"]])
        durations.append(float(linear_alarm.run_at_once(sc, run["seed"])["duration_minutes"]))
    return round(statistics.median(durations), 1) if durations else None


def row(label: str, bench: dict[str, Any], scenarios: Path, corpus: str | None = None) -> dict[str, Any]:
    ours, peer = bench["summary"][STRATEGY], bench["summary"][PEER]
    runs = [r for r in bench["runs"] if r["strategy"] == STRATEGY and not r["bench"].get("in_sample")]
    median = ours["median_duration_minutes_good"]
    peer_median = peer["median_duration_minutes_good"]
    old = at_once_median(bench, scenarios)
    return {
        "corpus": corpus or scenarios.name,
        "label": label, "command": bench["meta"].get("command", ""),
        "missed_bad_changes": ours["missed_bad_changes"], "bad_runs": ours["bad_runs"],
        "false_halts": ours["false_halts"], "good_runs": ours["good_runs"],
        "impaired_vm_minutes": ours["impaired_vm_minutes"],
        "median_duration_good": median, "linear_alarm_median": peer_median, "linear_alarm_at_once_median": old,
        "ratio": round(median / peer_median, 2) if peer_median else None,
        "ratio_at_once": round(median / old, 2) if old else None,
        "phases": phase_breakdown(runs),
    }


def targets(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's before/after targets on one corpus (each says its ``corpus``, the after row's)."""
    corpus = after.get("corpus", "")
    return [{"corpus": corpus, **t} for t in _targets(before, after)]


def _targets(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    limit = round(IMPAIRED_LIMIT * before["impaired_vm_minutes"], 1)
    return [
        {"target": "no more missed bad changes", "met": after["missed_bad_changes"] <= before["missed_bad_changes"],
         "measured": f"{after['missed_bad_changes']} vs {before['missed_bad_changes']}"},
        {"target": "no more false halts", "met": after["false_halts"] <= before["false_halts"],
         "measured": f"{after['false_halts']} vs {before['false_halts']}"},
        {"target": f"impaired VM-minutes <= {IMPAIRED_LIMIT}x before", "met": after["impaired_vm_minutes"] <= limit,
         "measured": f"{after['impaired_vm_minutes']:,} vs {before['impaired_vm_minutes']:,} (limit {limit:,})"},
        {"target": f"median good duration <= {DURATION_LIMIT}x linear-alarm's (AppConfig timing)",
         "met": after["ratio"] is not None and after["ratio"] <= DURATION_LIMIT,
         "measured": f"{after['median_duration_good']} vs {after['linear_alarm_median']} min (ratio {after['ratio']})"},
    ]


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The markdown table bench/README.md shows between its before-after markers."""
    head = ["corpus", "commit", "missed bad", "false halts", "impaired VM-min", "median good (min)",
            *[f"{p} median / p90" for p in PHASES], "ratio vs linear-alarm (AppConfig / at once)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        phases = [f"{r['phases'][p]['median']} / {r['phases'][p]['p90']}" if p in r["phases"] else "-"
                  for p in PHASES]
        lines.append("| " + " | ".join([
            f"`{r.get('corpus', '')}`", r["label"], f"{r['missed_bad_changes']}/{r['bad_runs']}",
            f"{r['false_halts']}/{r['good_runs']}",
            f"{r['impaired_vm_minutes']:,}", f"{r['median_duration_good']}", *phases,
            f"{r['ratio']} ({r['linear_alarm_median']} min) / {r['ratio_at_once']} "
            f"({r['linear_alarm_at_once_median']} min)"]) + " |")
    return "\n".join(lines)


def render_readme(text: str, rows: Sequence[dict[str, Any]]) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + table(rows) + "\n" + text[end:]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m shared.bench.before_after", description=__doc__.split("\n")[0])
    ap.add_argument("--before", action="append", required=True, help="LABEL=PATH of a bench JSON before the change")
    ap.add_argument("--after", action="append", required=True, help="LABEL=PATH of the bench JSON after it")
    ap.add_argument("--scenarios", action="append", type=Path, required=True,
                    help="the corpus the runs are of (repeat: one per --before/--after pair)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--readme", type=Path)
    return ap


def groups(befores: Sequence[str], afters: Sequence[str], scenarios: Sequence[Path]
           ) -> list[tuple[Path, list[str], str]]:
    """Each corpus with its before specs and its after spec, or ValueError naming what does not pair up."""
    if len(afters) != len(scenarios):
        raise ValueError(f"{len(afters)} --after for {len(scenarios)} --scenarios: give one --after per corpus")
    if len(scenarios) == 1:
        return [(scenarios[0], list(befores), afters[0])]
    if len(befores) != len(scenarios):
        raise ValueError(f"{len(befores)} --before for {len(scenarios)} --scenarios: with several corpora, give "
                         "one --before per corpus")
    return [(sc, [b], a) for sc, b, a in zip(scenarios, befores, afters, strict=True)]


def main(argv: Sequence[str] | None = None) -> None:
    ap = parser()
    args = ap.parse_args(argv)
    try:
        pairs = groups(args.before, args.after, args.scenarios)
    except ValueError as exc:
        ap.error(str(exc))
    rows: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    for scenarios, befores, after in pairs:
        mine = []
        for spec in [*befores, after]:
            label, _, path = spec.partition("=")
            mine.append(row(label, load(Path(path)), scenarios))
        rows += mine
        checks += targets(mine[0], mine[-1])
    result = {"rows": rows, "targets": checks}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    if args.readme is not None:
        args.readme.write_text(render_readme(args.readme.read_text(), rows))


if __name__ == "__main__":
    main()
