"""The committed corpus is the generator's output, and it sweeps onsets where a sequential bake could lose."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from shared.adapters.simulator.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_corpus", ROOT / "bench" / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_corpus_is_exactly_what_the_generator_writes() -> None:
    expected = generator().files()
    committed = {p.name: p.read_text() for p in (ROOT / "bench" / "scenarios").glob("*.yaml")}
    assert sorted(committed) == sorted(expected), "run: python bench/make_corpus.py"
    stale = [name for name, text in expected.items() if committed[name] != text]
    assert not stale, f"regenerate with python bench/make_corpus.py: {stale}"


def test_the_corpus_has_fast_and_slow_effects_beginning_20_30_and_40_minutes_after_apply() -> None:
    import yaml

    sweep = [parse_scenario(yaml.safe_load(text)) for text in generator().files().values()
             if "onset-sweep" in yaml.safe_load(text).get("tags", [])]
    onsets = {(e.onset_minutes, "subtle" in sc.tags) for sc in sweep for e in sc.change.truth.effects}
    assert {(float(m), slow) for m in (20, 30, 40) for slow in (False, True)} <= onsets
    assert all(not sc.is_good_change for sc in sweep)
