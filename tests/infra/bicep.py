"""Reading the Bicep templates for the infra tests: parsed with pycep-parser (what checkov parses Bicep with)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
FUNCTION_APP = INFRA / "modules" / "function-app.bicep"
ROLE_ACTIONS = INFRA / "rollout-role-actions.json"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def parse(path: Path) -> dict[str, Any]:
    return dict(BicepParser().parse(file_path=path))


def module_body(module: dict[str, Any]) -> dict[str, Any]:
    """A module's ``{name, scope, params}``, whatever loop or condition wraps it."""
    config: dict[str, Any] = module["config"]
    while "params" not in config and isinstance(config.get("config"), dict):
        config = config["config"]
    return config


def module_path(source: Path, module: dict[str, Any]) -> Path:
    return (source.parent / module["detail"]["path"]).resolve()


def app_settings() -> set[str]:
    """Every app setting name the templates give the Function App: main's ``appSettings`` and the module's own."""
    main_module = next(m for m in parse(MAIN)["modules"].values() if module_path(MAIN, m) == FUNCTION_APP)
    names = set(module_body(main_module)["params"]["appSettings"])
    names |= set(parse(FUNCTION_APP)["variables"]["hostSettings"]["value"])
    return names


def app_setting_values() -> dict[str, Any]:
    main_module = next(m for m in parse(MAIN)["modules"].values() if module_path(MAIN, m) == FUNCTION_APP)
    values = dict(module_body(main_module)["params"]["appSettings"])
    values.update(parse(FUNCTION_APP)["variables"]["hostSettings"]["value"])
    return values


def role_actions() -> list[str]:
    actions: list[str] = json.loads(ROLE_ACTIONS.read_text())["actions"]
    return actions
