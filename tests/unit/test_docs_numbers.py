"""The benchmark's numbers in the docs come from the committed results, and every peer win is explained."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from shared.bench.report import BEGIN, END, markdown, peer_wins, with_results

ROOT = Path(__file__).parents[2]
RESULT = ROOT / "bench" / "results" / "heldout" / "bench.json.gz"
README = ROOT / "bench" / "README.md"


def result() -> dict:  # type: ignore[type-arg]
    return json.loads(gzip.decompress(RESULT.read_bytes()))


def test_the_results_block_of_the_bench_readme_is_the_committed_results_rendered() -> None:
    text = README.read_text(encoding="utf-8")
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert block == "\n" + markdown(result())
    assert with_results(text, result()) == text


def test_every_family_where_a_peer_does_better_is_named_with_its_reason_outside_the_generated_block() -> None:
    text = README.read_text(encoding="utf-8")
    prose = text.split(BEGIN, 1)[0] + text.split(END, 1)[1]
    why = prose.split("### Why a peer does better", 1)
    assert len(why) == 2, "bench/README.md needs a '### Why a peer does better' section"
    for w in peer_wins(result()):
        assert f"`{w['family']}`" in why[1], w["family"]


def test_the_committed_benchmark_ran_on_the_held_out_families_only_and_no_run_is_in_sample() -> None:
    r = result()
    names = {json.loads(json.dumps(x))["scenario"] for x in r["runs"]}
    held_out = {p.stem for p in (ROOT / "bench" / "heldout-families").glob("*.yaml")}
    assert names == held_out
    assert not any(x["bench"]["in_sample"] for x in r["runs"])
