"""Every template parses, and the modules fit together: what `azd up` would refuse before deploying anything.

No Bicep CLI runs here (none installs from the registries this project uses), so these tests check with
pycep-parser what Bicep itself would check first: syntax, module paths, parameters passed and required.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from .bicep import INFRA, MAIN, ROOT, bicep_files, module_body, module_path, parse

FILES = bicep_files()


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(INFRA)) for p in FILES])
def test_every_bicep_file_parses(path: Path) -> None:
    parsed = parse(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path.name} declares neither resources nor modules"


def _references() -> list[tuple[Path, str, dict[str, object]]]:
    return [(src, name, m) for src in FILES for name, m in parse(src).get("modules", {}).items()]


def test_every_module_reference_names_a_local_template() -> None:
    missing = [f"{src.name}: module {name} -> {m['detail']['path']}"  # type: ignore[index]
               for src, name, m in _references() if not module_path(src, m).is_file()]  # type: ignore[arg-type]
    assert not missing, missing


def test_modules_get_every_required_parameter_and_no_unknown_one() -> None:
    problems = []
    for src, name, m in _references():
        target = parse(module_path(src, m))  # type: ignore[arg-type]
        declared = target.get("parameters", {})
        passed = set(module_body(m)["params"])  # type: ignore[arg-type]
        required = {p for p, spec in declared.items() if spec.get("default") is None}
        problems += [f"{src.name}: module {name} passes {p!r}, which {m['detail']['path']} does not declare"  # type: ignore[index]
                     for p in sorted(passed - set(declared))]
        problems += [f"{src.name}: module {name} does not pass required {p!r}" for p in sorted(required - passed)]
    assert not problems, "\n".join(problems)


def test_loaded_json_files_exist() -> None:
    missing = []
    for src in FILES:
        for rel in re.findall(r"loadJsonContent\('([^']+)'\)", src.read_text()):
            if not (src.parent / rel).is_file():
                missing.append(f"{src.name}: {rel}")
    assert not missing, missing


def test_parameters_file_sets_every_required_main_parameter_and_only_declared_ones() -> None:
    declared = parse(MAIN)["parameters"]
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    required = {p for p, spec in declared.items() if spec.get("default") is None}
    assert set(given) <= set(declared), f"undeclared: {sorted(set(given) - set(declared))}"
    assert required <= set(given), f"required but not in main.parameters.json: {sorted(required - set(given))}"


def test_azure_yaml_deploys_the_rollout_app_and_the_trainer_as_python_function_apps_from_infra_main() -> None:
    spec = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert spec["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert set(spec["services"]) == {"api", "trainer"}  # the rollout app and the trainer, two Function Apps
    for service in spec["services"].values():
        assert (service["language"], service["host"]) == ("python", "function")
        assert (ROOT / service["project"] / "function_app.py").is_file()
    trainer = spec["services"]["trainer"]
    assert (ROOT / trainer["project"] / trainer["hooks"]["prepackage"]["posix"]["run"]).is_file()
    for event in ("postprovision", "postdeploy", "predown"):
        hook = spec["hooks"][event]["posix"]["run"]
        assert (ROOT / hook).is_file(), hook


def test_nothing_is_deployed_into_a_resource_group_azd_did_not_create() -> None:
    """`azd down` deletes every resource group that holds a resource of the deployment: never the fleet's."""
    created = {name for name, r in parse(MAIN)["resources"].items()
               if r["type"] == "Microsoft.Resources/resourceGroups"}
    for name, module in parse(MAIN)["modules"].items():
        scope = module_body(module).get("scope")
        assert scope is None or scope in created, f"module {name} deploys into {scope}"
    for path in FILES:
        for name, r in parse(path).get("resources", {}).items():
            if not r.get("existing"):
                assert "scope" not in r["config"] or not str(r["config"]["scope"]).startswith("{'function'"), \
                    f"{path.name}: {name} is deployed at a computed scope"


def test_each_azd_service_has_a_function_app_tagged_with_its_name() -> None:
    """azd finds the app to deploy a service into by the tag azd-service-name = the service's name."""
    spec = yaml.safe_load((ROOT / "azure.yaml").read_text())
    app = INFRA / "modules" / "function-app.bicep"
    assert "'azd-service-name': serviceName" in app.read_text()
    default = parse(app)["parameters"]["serviceName"]["default"]
    tagged = {module_body(m)["params"].get("serviceName", default)
              for src, _, m in _references() if module_path(src, m) == app}
    assert tagged == set(spec["services"]), tagged


def test_package_leaves_out_tests_and_tooling_but_ships_the_code_and_model() -> None:
    ignored = {line.strip() for line in (ROOT / ".funcignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {"tests", ".venv", "infra", "node_modules"} <= ignored
    assert not ignored & {"shared", "functions", "model", "function_app.py", "host.json", "requirements.txt"}
