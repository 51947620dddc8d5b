from __future__ import annotations

import logging
from pathlib import Path

import pytest

SCENARIOS = Path(__file__).parent / "scenarios"

# azure.functions logs a warning per app without HTTP functions; it says nothing about this project
logging.getLogger().setLevel(logging.ERROR)


@pytest.fixture
def scenario_path() -> object:
    def get(name: str) -> Path:
        return SCENARIOS / f"{name}.yaml"

    return get
