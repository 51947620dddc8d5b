"""The pipeline's publisher installs with the ``cli`` extra alone: pip resolves none of the model's or the tools'
libraries for it, and the commands it runs work where those libraries cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# what `pip install ".[cli]"` must not pull (the 875 MB virtualenv of issue 17), and their import names
HEAVY = {"numpy": "numpy", "scipy": "scipy", "onnxruntime": "onnxruntime", "scikit-learn": "sklearn",
         "skl2onnx": "skl2onnx", "onnx": "onnx", "matplotlib": "matplotlib", "azure-functions": "azure.functions",
         "azure-functions-durable": "azure.durable_functions"}
REQUEST = ("rollout_id: pub-1\ntargets: [/subscriptions/00000000-0000-4000-8000-000000000000/resourceGroups/rg/"
           "providers/Microsoft.Compute/virtualMachineScaleSets/web]\n"
           "change: {change_id: c1, kind: run-command, payload: {script: echo}}\n")


def test_pip_resolves_the_cli_extra_without_the_model_or_tool_libraries(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--report", str(report), ".[cli]"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    names = {i["metadata"]["name"].lower().replace("_", "-") for i in json.loads(report.read_text())["install"]}
    assert not names & set(HEAVY), sorted(names & set(HEAVY))
    assert {"shadow-rollout", "azure-servicebus", "azure-identity", "pydantic", "pyyaml", "typer", "rich"} <= names


# runs the installed command's entry point in an interpreter where the libraries ".[cli]" lacks cannot be imported
BLOCKED = f"""
import sys
from importlib.abc import MetaPathFinder
BLOCKED = {sorted(HEAVY.values())!r}
class Absent(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Absent())
from shared.cli import main
sys.argv = ["shadow-rollout", *sys.argv[1:]]
main()
"""


def _without_heavy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKED, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})


@pytest.mark.parametrize("args", [["--help"], ["publish", "--help"], ["publish", "REQUEST", "--dry-run"],
                                  ["status", "r1", "--app", "http://127.0.0.1:9"]],
                         ids=["help", "publish-help", "publish-dry-run", "status"])
def test_the_publishers_commands_run_without_the_model_or_tool_libraries(args: list[str], tmp_path: Path) -> None:
    req = tmp_path / "request.yaml"
    req.write_text(REQUEST)
    p = _without_heavy(*[str(req) if a == "REQUEST" else a for a in args])
    assert "Traceback" not in p.stderr and "ModuleNotFoundError" not in p.stderr, p.stderr[-2000:]
    if args[0] == "status":  # reached the HTTP call: nothing was missing on the way
        assert p.returncode == 1 and "cannot reach http://127.0.0.1:9/api/rollouts/r1" in p.stderr
    else:
        assert p.returncode == 0, p.stderr
    if "--dry-run" in args:
        assert json.loads(p.stdout)["message_id"] == "pub-1"


def test_a_tools_command_without_the_tools_says_which_extra_in_one_line() -> None:
    p = _without_heavy("simulate")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith("error: this command needs numpy, which is not installed") and \
        'pip install ".[tools]"' in p.stderr
