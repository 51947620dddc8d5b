"""What the failure model was trained and validated on, so that no benchmark figure is measured on it.

``model/manifest.json`` lists every (scenario, seed) pair the shipped model saw, each scenario by a digest of its
content (so a renamed or copied file is still recognised, and an edited one is not). The benchmark marks a run on
such a pair ``"in_sample": true`` and leaves it out of every headline figure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..adapters.simulator.scenario import Scenario, load_scenario
from ..domain.errors import ConfigurationError

MANIFEST_FILE = "manifest.json"


def scenario_digest(scenario: Scenario) -> str:
    """A digest of everything that makes the scenario (name included), stable across key order and formatting,
    and across new optional scenario keys (defaults are left out, so extending the contract keeps the digests)."""
    text = json.dumps(scenario.model_dump(mode="json", exclude_defaults=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Manifest:
    """Pairs of (scenario digest, seed) per use: ``training`` and ``validation``."""

    pairs: dict[str, frozenset[tuple[str, int]]] = field(default_factory=dict)

    def use_of(self, scenario: Scenario, seed: int) -> str | None:
        """``training`` or ``validation`` when the model saw this pair, else None."""
        key = (scenario_digest(scenario), seed)
        return next((use for use, pairs in sorted(self.pairs.items()) if key in pairs), None)


def entries(paths: Iterable[Path], seed_offsets: Sequence[int]) -> list[dict[str, Any]]:
    """One entry per scenario file: its name, digest and the seeds used (file seed + each offset)."""
    out = []
    for p in paths:
        sc = load_scenario(p)
        out.append({"scenario": sc.name, "file": p.name, "digest": scenario_digest(sc),
                    "seeds": [sc.seed + k for k in seed_offsets]})
    return out


def write_manifest(directory: Path, uses: dict[str, list[dict[str, Any]]]) -> Path:
    path = directory / MANIFEST_FILE
    path.write_text(json.dumps({"uses": uses}, indent=1) + "\n")
    return path


def load_manifest(directory: Path) -> Manifest:
    """The model's manifest; a model directory without one is a clear error (its data would be unknown)."""
    path = directory / MANIFEST_FILE
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the model's manifest {path}: {exc}; without it no run can be told "
                                 "apart from the model's training data") from exc
    return Manifest({use: frozenset((e["digest"], int(s)) for e in es for s in e["seeds"])
                     for use, es in raw["uses"].items()})
