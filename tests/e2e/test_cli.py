"""The installed ``shadow-rollout`` command, end to end, as a user runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

OUTCOME_KEYS = {"scenario", "seed", "strategy", "outcome", "vms", "production_vms_impaired", "impaired_vm_minutes",
                "shadow", "fleet_cost_usd", "snapshots_taken", "capacity", "duration_minutes", "decisions"}
EXTENSION_KEYS = {"leaks", "janitor"}  # beyond the contract: what was left behind, and what the janitor returned
VMS_KEYS = {"total", "on_new_config", "rolled_back", "never_touched", "failed_unrecovered", "unknown_state"}
OUTCOMES = {"completed", "completed_with_exclusions", "completed_with_rollbacks", "halted_before_production",
            "halted_in_production", "failed"}


def exe() -> str:
    found = shutil.which("shadow-rollout", path=str(Path(sys.executable).parent))
    assert found, "the shadow-rollout console command is not installed"
    return found


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([exe(), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env} if env else None)


@pytest.mark.parametrize("name", ["good-change", "crash-one-sku", "latent-crash", "fleet-wide-crash"])
def test_simulate_json_prints_exactly_the_contract_outcome(name: str, scenario_path: Callable[[str], Path]) -> None:
    p = cli("simulate", "--scenario", str(scenario_path(name)), "--json")
    assert p.returncode == 0, p.stderr
    o = json.loads(p.stdout)  # nothing but one JSON object on stdout
    assert set(o) == OUTCOME_KEYS | EXTENSION_KEYS
    assert o["leaks"] == {"shadows": 0, "leases": 0, "extra_instances": 0, "snapshots": 0}
    assert set(o["vms"]) == VMS_KEYS and sum(o["vms"].values()) - o["vms"]["total"] == o["vms"]["total"]
    assert o["outcome"] in OUTCOMES and o["strategy"] == "shadow-predictive" and o["scenario"] == name
    assert set(o["shadow"]) == {"instances", "strata_total", "strata_covered", "evictions", "cost_usd"}
    assert set(o["capacity"]) == {"max_extra_instances", "extra_vm_minutes", "shortfall_vm_minutes"}
    assert all(set(d) == {"minute", "kind", "reason"} for d in o["decisions"])


def test_simulate_under_chaos_says_what_was_redelivered_and_how_often_the_worker_crashed(
        scenario_path: Callable[[str], Path]) -> None:
    p = cli("simulate", "--scenario", str(scenario_path("good-change")), "--chaos", "3", "--chaos-rate", "0.5",
            "--json")
    assert p.returncode == 0, p.stderr
    o = json.loads(p.stdout)
    assert set(o) == OUTCOME_KEYS | EXTENSION_KEYS | {"chaos"}
    assert set(o["chaos"]) == {"redelivered", "crashes"} and o["chaos"]["redelivered"] + o["chaos"]["crashes"] > 0
    assert o["vms"]["unknown_state"] == 0
    assert o["leaks"] == {"shadows": 0, "leases": 0, "extra_instances": 0, "snapshots": 0}
    bad = cli("simulate", "--chaos", "3", "--chaos-rate", "2", "--json")
    assert bad.returncode == 2 and "--chaos-rate must be within 0..1" in bad.stderr


def test_seed_option_overrides_the_scenario_seed(scenario_path: Callable[[str], Path]) -> None:
    p = cli("simulate", "--scenario", str(scenario_path("good-change")), "--seed", "9", "--json")
    assert json.loads(p.stdout)["seed"] == 9


def test_invalid_scenario_is_refused_naming_the_key_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfleet:\n  scale_sets:\n    - {name: web, capacity: 0}\nchange: {id: c, colour: red}\n")
    p = cli("simulate", "--scenario", str(bad), "--json")
    assert p.returncode == 2
    assert p.stdout == ""
    assert "fleet.scale_sets[0].capacity: Input should be greater than or equal to 1" in p.stderr
    assert "change.colour: unknown key" in p.stderr
    assert "Traceback" not in p.stderr


def test_publish_dry_run_validates_the_request_and_prints_the_message(tmp_path: Path) -> None:
    req = tmp_path / "request.yaml"
    req.write_text("rollout_id: rel-9\ntargets: ['/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/"
                   "rg/providers/Microsoft.Compute/virtualMachineScaleSets/web']\nchange: {change_id: cfg-9}\n",
                   encoding="utf-8")
    p = cli("publish", str(req), "--dry-run", "--requester", "pipeline-42")
    assert p.returncode == 0, p.stderr
    message = json.loads(p.stdout)
    assert message["message_id"] == "rel-9" and json.loads(message["body"])["requester"] == "pipeline-42"
    req.write_text("rollout_id: rel-9\ntargets: []\nchange: {change_id: cfg-9}\n", encoding="utf-8")
    p = cli("publish", str(req), "--dry-run")
    assert p.returncode == 2 and "request.targets: List should have at least 1 item" in p.stderr


def test_schema_command_prints_the_published_schema() -> None:
    p = cli("schema")
    assert p.returncode == 0
    published = Path(__file__).resolve().parents[2] / "docs" / "rollout-request.schema.json"
    assert json.loads(p.stdout) == json.loads(published.read_text(encoding="utf-8"))


def test_evaluate_reports_the_contract_figures_for_model_judge_and_truth(
        tmp_path: Path, scenario_path: Callable[[str], Path]) -> None:
    for name in ("crash-one-sku", "good-change"):
        shutil.copy(scenario_path(name), tmp_path / f"{name}.yaml")
    p = cli("evaluate", "--scenarios", str(tmp_path), "--seeds", "1", "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    for key in ("roc_auc", "pr_auc", "recall_at_precision_95", "brier"):
        assert isinstance(r[key], float) and isinstance(r[f"judge_{key}"], float), key
    assert r["examples"] == 120 and 0 < r["positives"] < 120
    assert r["oracle_roc_auc"] == 1.0  # crash-one-sku: the truth knows exactly which SKU fails
    assert r["roc_auc"] > 0.9 and r["brier"] < 0.1
    shipped = json.loads((Path(__file__).resolve().parents[2] / "model" / "selection.json").read_text())
    assert r["model"] == shipped["model"]  # model/selection.json: what validation chose
    assert (r["brier"] == r["judge_brier"]) == (shipped["model"] == "judge") and r["seed_offset"] == 0


def test_select_model_writes_the_choice_and_the_cards_section(tmp_path: Path,
                                                             scenario_path: Callable[[str], Path]) -> None:
    scenarios = tmp_path / "validation"
    scenarios.mkdir()
    for name in ("crash-one-sku", "good-change"):
        shutil.copy(scenario_path(name), scenarios / f"{name}.yaml")
    model = tmp_path / "model"
    shutil.copytree(Path(__file__).resolve().parents[2] / "model", model)
    (model / "selection.json").unlink()
    p = cli("select-model", "--scenarios", str(scenarios), "--seeds", "1", "--model-dir", str(model))
    assert p.returncode == 0, p.stderr
    selection = json.loads((model / "selection.json").read_text())
    assert selection["model"] in ("model", "judge") and selection["rollouts"] == 2
    assert f"in use: {selection['model']}" in " ".join(p.stdout.split())
    assert "## In use: model or judge" in (model / "README.md").read_text()


def test_flags_show_no_type_in_help() -> None:
    """A flag takes no value: its help must not suggest one (``--json <bool>``)."""
    for command in ("simulate", "bench", "publish", "status"):
        p = cli(command, "--help")
        assert p.returncode == 0 and ("--json" in p.stdout or "--dry-run" in p.stdout)
        assert not re.search(r"--(json|serve|approval|dry-run|wait)\s+<bool>", p.stdout), p.stdout
