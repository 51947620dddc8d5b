"""Bundled scenarios: the demo's default fleet and change."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def default_scenario_path() -> Path:
    return Path(str(resources.files("shared.adapters.simulator") / "default_scenario.yaml"))
