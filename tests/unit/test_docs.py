"""Docs that cannot drift: every relative link resolves (file and heading), every documented ``shadow-rollout``
command line parses against the CLI, and the figures of bench/README.md are the results files' own."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import typer.main

# typer 0.29 carries its own click; its parser is what the command uses
from typer._click.core import Context
from typer._click.exceptions import UsageError
from typer.exceptions import Exit

from shared.bench.docs import against_before, quoted_figures, scale_table
from shared.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", ROOT / "bench" / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("*/README.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```(?:sh|bash|shell|console)?\n(.*?)```", re.S)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def _anchors(md: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", md.read_text(), re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_and_heading(doc: Path) -> None:
    text = FENCE.sub("", doc.read_text())
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not fetched here
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, broken


def _documented_commands() -> list[tuple[str, str]]:
    """Every ``shadow-rollout`` command line in a shell block or a one-line code span of the docs."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        blocks = [b.replace("\\\n", " ") for b in FENCE.findall(text)]
        lines = [ln for b in blocks for ln in b.splitlines()]
        lines += re.findall(r"`((?:\.venv/bin/)?shadow-rollout [^`\n]+)`", text)
        for ln in lines:
            ln = ln.split(" #")[0].strip()
            m = re.search(r"(?:^|\s)(?:\.venv/bin/|\$\(BIN\)/)?shadow-rollout\s+(\S.*)$", ln)
            if m and "|" not in m.group(1).split()[0]:
                found.append((str(doc.relative_to(ROOT)), m.group(1)))
    return found


COMMANDS = _documented_commands()


def test_the_docs_document_commands() -> None:
    assert len(COMMANDS) >= 15 and {c.split()[0] for _, c in COMMANDS} >= {
        "simulate", "publish", "bench", "bench-report", "bench-scale", "bench-import", "status", "watch", "approve",
        "abort", "list", "train", "evaluate", "retrain"}


@pytest.mark.parametrize(("doc", "line"), COMMANDS, ids=[f"{d}: {c[:60]}" for d, c in COMMANDS])
def test_every_documented_command_line_parses_against_the_cli(doc: str, line: str) -> None:
    # placeholders stand for a value: <id>, …, FILE/DIR/LIST; N for a number
    args = ["1" if a == "N" else "placeholder" if "<" in a or a in ("...", "…") else a for a in shlex.split(line)]
    group = typer.main.get_command(app)
    name, *rest = args
    cmd = group.get_command(Context(group), name)  # type: ignore[attr-defined]
    assert cmd is not None, f"{doc}: no command {name!r} in `shadow-rollout {line}`"
    if not rest:
        return  # the command named in prose, not a command line
    try:
        cmd.make_context(name, rest, resilient_parsing=False)
    except Exit:
        pass
    except UsageError as exc:
        pytest.fail(f"{doc}: `shadow-rollout {line}`: {exc.format_message()}")


def test_bench_readme_figures_are_the_results_files_own() -> None:
    """The scale and start-up figures here; the held-out corpus block is checked by test_docs_numbers."""
    results = ROOT / "bench" / "results"
    scale = json.loads((results / "scale.json").read_text())
    startup = json.loads((results / "import.json").read_text())
    text = (ROOT / "bench" / "README.md").read_text()
    lines = set(text.splitlines())
    for row in scale_table(scale):
        assert row in lines, f"bench/README.md lacks the results files' row:\n{row}"
    flat = re.sub(r"\s+", " ", text)
    before = json.loads((results / "scale-before.json").read_text())
    for phrase in [*quoted_figures(scale, startup), against_before(scale, before)]:
        assert phrase in flat, f"bench/README.md does not say, as the results files do: {phrase!r}"
