"""The app settings the code reads and the ones infra sets agree, and none of them holds a secret.

What the code reads is found in the code itself, so a new setting cannot be forgotten here: string literals
naming a setting in every module the Function App can import (function_app.py and what it imports, at module
level or inside functions), ``%Setting%`` in the bindings and host.json, and the identity-based connections the
triggers name. A setting the code reads must be set by infra, or be listed in OPTIONAL with the reason infra
leaves it unset (its default in code is what Azure should use).
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path

import pytest

from .bicep import INFRA, ROOT, app_setting_values, app_settings, parse

SETTING = re.compile(r"(SHADOW_ROLLOUT|AZURE|APPLICATIONINSIGHTS|PYTHON_APPLICATIONINSIGHTS)_[A-Z0-9_]+")
BINDING_SETTING = re.compile(r"%([A-Za-z0-9_.]+)%")

OPTIONAL: dict[str, str] = {
    "SHADOW_ROLLOUT_SCENARIO": "simulator backend only (SHADOW_ROLLOUT_BACKEND=sim); Azure runs the azure backend",
    "SHADOW_ROLLOUT_MODEL": "an override that forces the statistical judge; unset, the shipped ONNX model scores",
    "SHADOW_ROLLOUT_MODEL_DIR": "defaults to the model/ folder shipped in the package: the registry's fallback",
    "SHADOW_ROLLOUT_REGISTRY_RECHECK_MINUTES": "defaults to 5: how stale the promoted version may be",
    "SHADOW_ROLLOUT_REGISTRY_CONNECTION_STRING": "Azurite and local runs only: in Azure the registry uses "
                                                 "SHADOW_ROLLOUT_REGISTRY_URL and the identity, never a key",
    "SHADOW_ROLLOUT_INTAKE_CONFIG": "a file path, the alternative to SHADOW_ROLLOUT_INTAKE_CONFIG_JSON, which infra "
                                    "sets",
    "SHADOW_ROLLOUT_TABLES_CONNECTION_STRING": "Azurite and local runs only: in Azure the store uses "
                                               "SHADOW_ROLLOUT_TABLES_ENDPOINT and the identity, never a key",
    "SHADOW_ROLLOUT_LEASES_TABLE": "defaults to 'leases' in the app's storage account, which infra creates no "
                                   "differently from any other table (the adapter creates it on first use)",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "left unset on purpose: the app configures OpenTelemetry itself "
                                                   "(shared/observability.py); set, the worker would too",
}
"""Settings the code reads that infra deliberately does not set, and why."""

ARRIVE_WITH_ADAPTERS = {"SHADOW_ROLLOUT_TABLES_CONNECTION_STRING"}
"""Read by the Azure adapters' wiring (shared/bootstrap.py on branch issue-4), not by this branch's code yet."""

IDENTITY_CONNECTION = ("__fullyQualifiedNamespace", "__credential", "__clientId")


# ---------------------------------------------------------------------------------------------- what the code reads
def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, tree: ast.AST) -> set[str]:
    """Project modules imported anywhere in this file (function-level imports too: adapters load lazily)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] if "." in package else package
        package += ".__init__"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: -node.level]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}  # "from . import x" imports a module
    return {m for m in found if m.split(".")[0] in ("shared", "functions")}


@cache
def app_modules() -> tuple[Path, ...]:
    """function_app.py and every project module it can reach through imports."""
    seen: dict[Path, ast.AST] = {}
    todo = [ROOT / "function_app.py"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = tree = ast.parse(path.read_text(), filename=str(path))
        for name in _imports(path, tree):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
                f = _module_file(".".join(parts[:i]))
                if f is not None and f not in seen:
                    todo.append(f)
    return tuple(sorted(seen))


@cache
def settings_read() -> frozenset[str]:
    names: set[str] = set()
    for path in app_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if SETTING.fullmatch(node.value):
                    names.add(node.value)
                # a binding expression is a whole argument ("%NAME%"); a strftime format holds % pairs too
                if (m := BINDING_SETTING.fullmatch(node.value)) is not None:
                    names.add(m.group(1))
    names |= set(BINDING_SETTING.findall((ROOT / "host.json").read_text()))
    return frozenset(names)


@cache
def identity_connections() -> frozenset[str]:
    """Connection names the triggers use (``connection=``), resolved when given as a module constant."""
    found: set[str] = set()
    for path in (ROOT / "functions").glob("*.py"):
        tree = ast.parse(path.read_text())
        constants = {t.id: n.value.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                     for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "connection":
                if isinstance(node.value, ast.Constant):
                    found.add(node.value.value)
                elif isinstance(node.value, ast.Name):
                    found.add(constants[node.value.id])
    return frozenset(found)


# ---------------------------------------------------------------------------------------------- tests
def test_the_scan_sees_the_function_app_and_its_lazily_loaded_modules() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in app_modules()}
    assert {"function_app.py", "functions/intake.py", "shared/bootstrap.py", "shared/intake/config.py",
            "shared/observability.py"} <= names
    assert "shared/cli.py" not in names, "the CLI's settings are not the Function App's"
    assert {"SHADOW_ROLLOUT_REQUESTS_TOPIC", "SHADOW_ROLLOUT_BACKEND", "APPLICATIONINSIGHTS_CONNECTION_STRING"} \
        <= settings_read()
    assert "ServiceBusConnection" in identity_connections()


def test_infra_sets_every_setting_the_code_reads_or_it_is_optional_with_a_reason() -> None:
    missing = sorted(settings_read() - app_settings() - set(OPTIONAL))
    assert not missing, f"the code reads these app settings but infra/ does not set them: {missing}"


def _adapters_present() -> bool:
    return _module_file("shared.adapters.azure") is not None


def test_optional_settings_are_still_read_and_really_left_unset() -> None:
    pending = set() if _adapters_present() else ARRIVE_WITH_ADAPTERS
    stale = sorted(set(OPTIONAL) - settings_read() - pending)
    assert not stale, f"no longer read by the code, remove from OPTIONAL: {stale}"
    both = sorted(set(OPTIONAL) & app_settings())
    assert not both, f"listed as optional but set by infra: {both}"


@pytest.mark.parametrize("connection", sorted(identity_connections()))
def test_every_trigger_connection_is_identity_based_with_the_user_assigned_identity(connection: str) -> None:
    values = app_setting_values()
    assert {connection + suffix for suffix in IDENTITY_CONNECTION} <= set(values), connection
    assert values[f"{connection}__credential"] == "managedidentity"
    assert connection not in values, f"{connection} alone would be a connection string"


def test_host_storage_is_identity_based() -> None:
    values = app_setting_values()
    assert "AzureWebJobsStorage" not in values, "a storage connection string holds the account key"
    assert values["AzureWebJobsStorage__credential"] == "managedidentity"
    assert {"AzureWebJobsStorage__accountName", "AzureWebJobsStorage__clientId"} <= set(values)


def test_no_setting_or_template_carries_a_key() -> None:
    for path in INFRA.rglob("*.bicep"):
        text = path.read_text()
        for secret in ("listKeys(", "listConnectionStrings(", "AccountKey=", "SharedAccessKey", "@secure()"):
            assert secret not in text, f"{path.name} uses {secret}: use the identity and a data role instead"
    keyish = [n for n in app_settings() if re.search(r"(KEY|SECRET|PASSWORD|CONNECTION_STRING)$", n, re.I)]
    # Application Insights' connection string names an ingestion endpoint; ingestion needs Entra ID (local auth off)
    assert keyish == ["APPLICATIONINSIGHTS_CONNECTION_STRING"], keyish
    assert app_setting_values()["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].endswith("Authorization=AAD")


def test_default_intake_document_is_valid() -> None:
    """The intake mapping infra writes when none is given (scope = the target resource groups) parses."""
    from shared.intake.config import parse_intake_config

    default = parse(INFRA / "main.bicep")["variables"]["defaultIntake"]["value"]
    assert set(default) == {"scope", "resource_writes"}
    document = {"scope": {"resource_groups": ["/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg"]},
                "resource_writes": {"action": default["resource_writes"]["action"], "ignore_callers": ["id", "cid"]}}
    config = parse_intake_config(document)
    assert config.resource_writes.action == "report"


def test_host_json_names_only_settings_infra_sets_and_matches_the_bindings() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    hub = host["extensions"]["durableTask"]["hubName"]
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,44}", hub), f"task hub names are 3-45 letters and digits: {hub}"
    # the intake settles poison messages by returning normally (docs/intake.md): the host must complete them
    assert host["extensions"]["serviceBus"]["autoCompleteMessages"] is True
    # never sampled away: a failed execution or a request must always reach Application Insights
    excluded = host["logging"]["applicationInsights"]["samplingSettings"]["excludedTypes"].split(";")
    assert {"Request", "Exception"} <= set(excluded)


@pytest.mark.parametrize("param", ["retrainSchedule", "janitorSchedule"])
def test_timer_schedule_defaults_are_six_field_ncrontabs(param: str) -> None:
    default = parse(INFRA / "main.bicep")["parameters"][param]["default"]
    assert len(default.split()) == 6, default


def test_azure_settings_built_from_infra_point_at_the_deployed_resources() -> None:
    """Every place the Azure adapters reach comes from a setting infra sets, not from a default in code."""
    clients = pytest.importorskip(
        "shared.adapters.azure.clients",
        reason="the Azure adapters (shared/adapters/azure, branch issue-4) are not on this branch yet")
    env = {name: f"<{name}>" for name in app_settings()}
    settings = clients.AzureSettings.from_environment(env)
    from_infra = set(env.values())
    fields = ("subscription_id", "fleet_resource_group", "shadow_resource_group", "location", "shadow_pool_name",
              "shadow_subnet_id", "workspace_id", "metrics_url")
    defaulted = [f for f in fields if getattr(settings, f) not in from_infra]
    assert not defaulted, f"AzureSettings fell back to its defaults for {defaulted}: infra sets no such setting"


def test_every_rollout_setting_infra_sets_is_read_by_the_code() -> None:
    """A setting nobody reads is a setting someone will trust in vain."""
    clients = pytest.importorskip(
        "shared.adapters.azure.clients",
        reason="the Azure adapters (shared/adapters/azure, branch issue-4) are not on this branch yet")
    env = {name: f"<{name}>" for name in app_settings()}
    base = clients.AzureSettings.from_environment(env)
    read_by_settings = {n for n in env if n != "AZURE_SUBSCRIPTION_ID"
                        and clients.AzureSettings.from_environment({k: v for k, v in env.items() if k != n}) != base}
    read_by_settings.add("AZURE_SUBSCRIPTION_ID")  # required: from_environment refuses to run without it
    ours = {n for n in app_settings() if n.startswith("SHADOW_ROLLOUT_") or n == "AZURE_SUBSCRIPTION_ID"}
    unread = sorted(ours - settings_read() - read_by_settings)
    assert not unread, f"infra sets these but no code reads them: {unread}"
