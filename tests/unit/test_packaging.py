"""The function app's package: what Azure installs (requirements.txt) is what the app imports, the tools are
extras, and importing the app loads none of the tools' heavy libraries (a cold start every scale-out pays)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("scipy", "sklearn", "skl2onnx", "matplotlib", "onnx", "typer", "rich")
TOOL_PACKAGES = {"scikit-learn", "skl2onnx", "onnx", "matplotlib", "typer", "rich"}


def _names(path: Path) -> set[str]:
    lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
    return {ln.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower() for ln in lines if ln}


def test_importing_the_function_app_loads_none_of_the_heavy_libraries() -> None:
    code = ("import json, sys; import function_app; "
            f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_requirements_hold_no_tool_dependency_and_the_extras_hold_them_all() -> None:
    assert not _names(ROOT / "requirements.txt") & TOOL_PACKAGES
    dynamic = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["dynamic"]
    extras = dynamic["optional-dependencies"]
    tools = set().union(*(_names(ROOT / f) for f in extras["tools"]["file"]))
    assert tools >= TOOL_PACKAGES
    assert _names(ROOT / extras["cli"]["file"][0]) == {"typer", "rich"}  # what a pipeline's publisher installs
    # `pip install .` is the core the publisher needs, a part of the app's set; the tools bring the app's set
    core = _names(ROOT / dynamic["dependencies"]["file"][0])
    assert core <= _names(ROOT / "requirements.txt") and not core & (TOOL_PACKAGES | {"numpy", "scipy", "onnxruntime"})
    assert extras["app"]["file"] == ["requirements.txt"] and "requirements.txt" in extras["tools"]["file"]


def _imports(path: Path) -> set[str]:
    """The shared.* modules a file imports, resolved (relative imports included)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            mod = ".".join([*base, node.module] if node.module else base)
            found |= {mod} | {f"{mod}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m.startswith("shared.")}


# imported only where the app never goes in Azure: the sim backend (infra sets SHADOW_ROLLOUT_BACKEND=azure);
# retraining is the trainer app's (trainer/), never the rollout app's
KNOWN = {("shared/bootstrap.py", "shared.adapters.simulator"), ("shared/bootstrap.py", "shared.scenarios")}


def test_the_package_leaves_the_tools_out_and_what_ships_does_not_import_them() -> None:
    ignored = {ln.strip() for ln in (ROOT / ".funcignore").read_text().splitlines()
               if ln.strip() and not ln.startswith("#")}
    tools = {"shared/adapters/simulator", "shared/bench", "shared/learning", "shared/strategies", "shared/cli.py",
             "shared/appcli.py", "shared/modelcli.py", "shared/localserve.py", "shared/simulation.py",
             "shared/scenarios.py", "shared/intake/check.py", "shared/intake/check_command.py",
             "shared/adapters/dry_run_orchestrations.py"}
    assert tools <= ignored
    left_out = {t.removesuffix(".py").replace("/", ".") for t in tools}
    shipped = [p for p in [*(ROOT / "shared").rglob("*.py"), *(ROOT / "functions").glob("*.py"),
                           ROOT / "function_app.py"]
               if not any(str(p.relative_to(ROOT)).startswith(t) for t in tools)]
    bad = {(str(p.relative_to(ROOT)), t) for p in shipped for m in _imports(p) for t in left_out
           if m == t or m.startswith(t + ".")}
    assert bad <= KNOWN and bad >= KNOWN, (bad - KNOWN, KNOWN - bad)  # KNOWN stays exact
