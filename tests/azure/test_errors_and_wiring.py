"""SDK errors are mapped once into the project's hierarchy; the Azure services are wired lazily."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from azure.core.exceptions import (
    DecodeError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)

from shared.adapters.azure import errors
from shared.adapters.azure.permissions import OPERATIONS, REQUIRED_ACTIONS
from shared.domain.errors import (
    AzureOperationError,
    CapacityUnavailable,
    Conflict,
    NotFound,
    Throttled,
    TransientError,
)

AZURE = Path(__file__).resolve().parents[2] / "shared" / "adapters" / "azure"


class _Resp:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.reason = "x"
        self.headers: dict[str, str] = {}
        self.request = None

    def text(self) -> str:
        return ""


def _http(status: int, code: str = "") -> HttpResponseError:
    exc = HttpResponseError(message=f"{code} boom", response=_Resp(status))  # type: ignore[arg-type]
    if code:
        exc.error = type("E", (), {"code": code})()  # type: ignore[assignment]
    return exc


@pytest.mark.parametrize(("exc", "expected"), [
    (_http(429), Throttled), (_http(503), TransientError), (_http(500), TransientError),
    (ResourceNotFoundError("gone"), NotFound), (ResourceExistsError("busy"), Conflict), (_http(409), Conflict),
    (_http(409, "SkuNotAvailable"), CapacityUnavailable), (_http(200, "ZonalAllocationFailed"), CapacityUnavailable),
    (DecodeError("bad json"), TransientError), (ServiceRequestError("refused"), TransientError),
    (_http(400, "InvalidParameter"), AzureOperationError),
])
def test_sdk_errors_map_to_one_project_error(exc: Exception, expected: type[Exception]) -> None:
    with pytest.raises(expected) as info, errors.azure_errors("op", "res"):
        raise exc
    assert info.value.__cause__ is exc
    assert type(info.value) is expected
    assert "op res" in str(info.value)


def test_only_the_error_module_catches_azure_sdk_errors() -> None:
    for path in AZURE.glob("*.py"):
        if path.name == "errors.py":
            continue
        text = path.read_text()
        assert not re.search(r"except\s+\(?\s*(AzureError|HttpResponseError|ResourceNotFoundError)", text), path.name


def test_every_sdk_call_of_the_adapters_is_listed_with_its_rbac_actions() -> None:
    tree = ast.parse((AZURE / "compute.py").read_text())
    groups = {"virtual_machines", "virtual_machine_scale_sets", "virtual_machine_scale_set_vms", "snapshots", "disks",
              "virtual_machine_run_commands", "virtual_machine_scale_set_vm_run_commands", "virtual_machine_extensions",
              "virtual_machine_scale_set_vm_extensions"}
    used = {f"{n.value.attr}.{n.attr}" for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute) and n.value.attr in groups}
    assert used, "no SDK calls found"
    assert used <= set(OPERATIONS), sorted(used - set(OPERATIONS))
    assert all("/" in a for a in REQUIRED_ACTIONS) and tuple(sorted(set(REQUIRED_ACTIONS))) == REQUIRED_ACTIONS


def test_azure_backend_is_wired_lazily_from_app_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared import bootstrap

    monkeypatch.setenv("SHADOW_ROLLOUT_BACKEND", "azure")
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000001")
    monkeypatch.setenv("SHADOW_ROLLOUT_TABLES_CONNECTION_STRING", "UseDevelopmentStorage=true")
    bootstrap.install(None)
    try:
        svc = bootstrap.services()
        from shared.adapters.azure.compute import AzureFleet

        assert isinstance(svc.fleet, AzureFleet)
        assert svc.fleet._client is None  # nothing reached Azure (or made a credential) yet
        assert svc.fleet.settings.metrics_url == "https://eastus.metrics.monitor.azure.com"
    finally:
        bootstrap.install(None)


def test_azure_backend_without_a_subscription_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared import bootstrap
    from shared.domain.errors import ShadowRolloutError

    monkeypatch.setenv("SHADOW_ROLLOUT_BACKEND", "azure")
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
    monkeypatch.delenv("SHADOW_ROLLOUT_SUBSCRIPTION_ID", raising=False)
    bootstrap.install(None)
    with pytest.raises(ShadowRolloutError, match="AZURE_SUBSCRIPTION_ID"):
        bootstrap.services()
    bootstrap.install(None)
