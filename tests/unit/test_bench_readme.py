"""bench/README.md's chaos figures are the ones in the results file they cite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
    corpora = ["heldout-families", "scenarios"]
    assert sorted({r["corpus"] for r in result["rows"]}) == corpora, "both corpora, each row saying which"
    for corpus in corpora:
        rows = [r for r in result["rows"] if r["corpus"] == corpus]
        assert rows[-1]["label"] == "after" and len(rows) >= 2
        assert len([t for t in result["targets"] if t["corpus"] == corpus]) == 4


def test_the_documented_before_after_command_line_parses() -> None:
    import re
    import shlex

    from shared.bench.before_after import groups, parser

    text = (ROOT / "bench" / "README.md").read_text().replace("\\\n", " ")
    (line,) = re.findall(r"python -m shared\.bench\.before_after (.+)", text)
    args = parser().parse_args(shlex.split(line))
    assert args.before and all(a.startswith("after=") for a in args.after) and args.readme == Path("bench/README.md")
    assert sorted(p.name for p in args.scenarios) == ["heldout-families", "scenarios"]
    assert len(groups(args.before, args.after, args.scenarios)) == 2


def test_before_after_pairs_each_corpus_with_its_own_runs_and_refuses_what_does_not_pair_up() -> None:
    from shared.bench.before_after import groups

    one = groups(["a=1", "b=2"], ["after=3"], [Path("x")])
    assert one == [(Path("x"), ["a=1", "b=2"], "after=3")]
    two = groups(["a=1", "a=2"], ["after=3", "after=4"], [Path("x"), Path("y")])
    assert two == [(Path("x"), ["a=1"], "after=3"), (Path("y"), ["a=2"], "after=4")]
    with pytest.raises(ValueError, match="one --before per corpus"):
        groups(["a=1"], ["after=3", "after=4"], [Path("x"), Path("y")])
    with pytest.raises(ValueError, match="one --after per corpus"):
        groups(["a=1"], ["after=3"], [Path("x"), Path("y")])


def test_each_target_says_its_corpus_and_is_judged_on_that_corpus_only() -> None:
    from shared.bench.before_after import targets

    def r(corpus: str, missed: int, impaired: float, ratio: float) -> dict[str, object]:
        return {"corpus": corpus, "missed_bad_changes": missed, "false_halts": 0, "impaired_vm_minutes": impaired,
                "ratio": ratio, "median_duration_good": 40.0, "linear_alarm_median": 30.0}

    held = targets(r("heldout-families", 0, 100.0, 2.0), r("heldout-families", 0, 105.0, 1.4))
    corpus = targets(r("scenarios", 1, 100.0, 2.0), r("scenarios", 2, 120.0, 1.6))
    assert {t["corpus"] for t in held} == {"heldout-families"} and all(t["met"] for t in held)
    assert [t["met"] for t in corpus] == [False, True, False, False]


def test_the_one_shadow_confirmation_figures_in_the_bench_readme_are_the_results_files_own() -> None:
    import re

    from shared.bench.sequential_oc import RESULTS, one_shadow_figures

    flat = re.sub(r"\s+", " ", (ROOT / "bench" / "README.md").read_text())
    phrase = one_shadow_figures(json.loads(RESULTS.read_text()))
    assert phrase in flat, f"bench/README.md does not say, as results/sequential.json does: {phrase!r}"
