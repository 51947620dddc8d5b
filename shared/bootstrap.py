"""The one place where adapters are wired together, lazily: nothing here runs at import time.

In Azure the host imports ``function_app`` and the first activity asks for :func:`services`, which builds
the adapters named by the ``SHADOW_ROLLOUT_BACKEND`` app setting. Locally, the CLI builds a simulator and
installs its services before it drives the orchestration.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .adapters.memory_leases import InMemoryLeases
from .adapters.memory_outcomes import InMemoryOutcomePublisher
from .domain.errors import ConfigurationError, ShadowRolloutError
from .ports import FailureModel, Leases, ModelRegistry, Orchestrations, OutcomePublisher, RolloutStore
from .services import Services as Services  # re-exported: the CLI and the simulation build Services here

_services: Services | None = None
_orchestrations: Orchestrations | None = None


def install(services: Services | None) -> None:
    """Use these services for every activity in this process (None forgets them)."""
    global _services
    _services = services


def install_orchestrations(orchestrations: Orchestrations | None) -> None:
    """Use this Orchestrations for every trigger in this process instead of the Durable client binding.

    Local runs (the local Durable runner) install one; in Azure nothing is installed and each trigger wraps
    the client its binding hands it.
    """
    global _orchestrations
    _orchestrations = orchestrations


def orchestrations(client: Any) -> Orchestrations:
    """The Orchestrations for one trigger invocation, over its Durable client binding."""
    if _orchestrations is not None:
        return _orchestrations
    from .adapters.durable_client import DurableClientOrchestrations

    return DurableClientOrchestrations(client)


def services() -> Services:
    global _services
    if _services is None:
        _services = _from_environment()
    return _services


def simulator_services(world: object, *, model: FailureModel | None = None) -> Services:
    """Services over a simulated fleet (a :class:`~shared.adapters.simulator.world.FleetWorld`)."""
    from .adapters.memory_store import InMemoryRolloutStore
    from .adapters.simulator.adapters import (
        SimDiskSnapshots,
        SimFleet,
        SimShadowLoad,
        SimShadowPool,
        SimTelemetry,
        to_datetime,
    )
    from .adapters.simulator.operations import SimOperations
    from .adapters.simulator.world import FleetWorld

    assert isinstance(world, FleetWorld)
    fleet, shadows, snapshots = SimFleet(world), SimShadowPool(world), SimDiskSnapshots(world)
    return Services(
        fleet=fleet,
        shadows=shadows,
        shadow_load=SimShadowLoad(world),
        snapshots=snapshots,
        operations=SimOperations(world, fleet, shadows, snapshots),
        telemetry=SimTelemetry(world),
        model=model or failure_model(lambda: to_datetime(world.clock.now)),
        store=InMemoryRolloutStore(),
        now=lambda: to_datetime(world.clock.now),
    )


def failure_model(now: Callable[[], datetime] | None = None) -> FailureModel:
    """The registry's promoted model when ``SHADOW_ROLLOUT_REGISTRY_URL`` is set (re-checked at most every
    ``SHADOW_ROLLOUT_REGISTRY_RECHECK_MINUTES``, by ``now``), else the trained ONNX model when it is shipped
    (``model/``) unless its validation chose the judge (``model/selection.json``, written by ``shadow-rollout
    select-model``), else the statistical judge.

    ``SHADOW_ROLLOUT_MODEL=judge`` forces the judge; ``SHADOW_ROLLOUT_MODEL_DIR`` points elsewhere than ``model/``
    (for the registry, that is the fallback).
    """
    from datetime import timedelta
    from pathlib import Path

    from .adapters.onnx_model import MODEL_DIR, OnnxFailureModel, model_available, read_selection
    from .adapters.registry_model import DEFAULT_RECHECK, RegistryFailureModel
    from .adapters.statistical_model import StatisticalFailureModel

    if os.environ.get("SHADOW_ROLLOUT_MODEL", "onnx") == "judge":
        return StatisticalFailureModel()
    directory = Path(os.environ.get("SHADOW_ROLLOUT_MODEL_DIR") or MODEL_DIR)
    url = os.environ.get("SHADOW_ROLLOUT_REGISTRY_URL")
    if url:
        minutes = os.environ.get("SHADOW_ROLLOUT_REGISTRY_RECHECK_MINUTES")
        try:
            recheck = timedelta(minutes=float(minutes)) if minutes else DEFAULT_RECHECK
        except ValueError as exc:
            raise ConfigurationError(f"SHADOW_ROLLOUT_REGISTRY_RECHECK_MINUTES={minutes!r} is not a number") from exc
        return RegistryFailureModel(model_registry(url), now=now or utcnow, packaged=directory, recheck=recheck)
    if not model_available(directory):
        return StatisticalFailureModel()
    selection = read_selection(directory)
    if selection is not None and selection["model"] == "judge":  # recorded in selection.json and the model card
        return StatisticalFailureModel()
    return OnnxFailureModel(directory)


def model_registry(url: str, *, create: bool = False) -> ModelRegistry:
    """The model registry at ``url``: a Blob container (``https://<account>.blob.core.windows.net/<container>``,
    by identity; or any URL whose last segment names the container, with
    ``SHADOW_ROLLOUT_REGISTRY_CONNECTION_STRING`` for Azurite), or a local directory (a path or ``file://``)."""
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        from .adapters.azure.blob_registry import BlobModelRegistry

        return BlobModelRegistry.from_url(url, create=create)
    if parsed.scheme in ("", "file"):
        from .adapters.file_registry import FileModelRegistry

        return FileModelRegistry(Path(unquote(parsed.path) if parsed.scheme == "file" else url))
    raise ConfigurationError(f"registry URL {url!r}: use https://<account>.blob.core.windows.net/<container>, "
                             "file://<dir> or a directory path")


def azure_services(settings: object | None = None, *, store: RolloutStore | None = None,
                   model: FailureModel | None = None, now: Callable[[], datetime] | None = None) -> Services:
    """Services over the Azure SDK adapters (``settings``: an :class:`~shared.adapters.azure.clients.AzureSettings`,
    default from the app settings). Clients are made on first use."""
    from .adapters.azure.clients import AzureSettings
    from .adapters.azure.compute import AzureDiskSnapshots, AzureFleet, AzureShadowLoad, AzureShadowPool
    from .adapters.azure.long_operations import AzureLongOperations
    from .adapters.azure.telemetry import AzureTelemetry

    cfg = settings if settings is not None else AzureSettings.from_environment()
    assert isinstance(cfg, AzureSettings)
    fleet, shadows, snapshots = AzureFleet(cfg), AzureShadowPool(cfg), AzureDiskSnapshots(cfg)
    clock = now or utcnow
    return Services(
        fleet=fleet,
        shadows=shadows,
        shadow_load=AzureShadowLoad(cfg),
        snapshots=snapshots,
        operations=AzureLongOperations(fleet, shadows, snapshots, clock),
        telemetry=AzureTelemetry(cfg),
        model=model or failure_model(now),
        store=store or _table_store_from_environment(),
        now=clock,
        leases=_table_leases_from_environment(),
        outcomes=_outcome_publisher_from_environment(),
    )


def _table_client(table: str) -> Any:
    """A TableClient for ``table`` from the app settings (a connection string locally, else the endpoint and
    the identity), or None when neither is set."""
    from azure.data.tables import TableServiceClient

    conn = os.environ.get("SHADOW_ROLLOUT_TABLES_CONNECTION_STRING")
    if conn:
        return TableServiceClient.from_connection_string(conn).get_table_client(table)
    endpoint = os.environ.get("SHADOW_ROLLOUT_TABLES_ENDPOINT")
    if not endpoint:
        return None
    from azure.identity import DefaultAzureCredential

    return TableServiceClient(endpoint, credential=DefaultAzureCredential()).get_table_client(table)


def _table_leases_from_environment() -> Leases:
    """Leases in Table storage, shared by every instance of the app; in-process only where no table is set
    (the Azure-shaped stand-in), with a warning, since those protect one process only."""
    from .adapters.azure.leases import TableLeases

    client = _table_client(os.environ.get("SHADOW_ROLLOUT_LEASES_TABLE", "leases"))
    if client is None:
        logging.getLogger(__name__).warning("no SHADOW_ROLLOUT_TABLES_ENDPOINT: scale-set leases are in-process")
        return InMemoryLeases()
    return TableLeases(client)


def _outcome_publisher_from_environment() -> OutcomePublisher:
    """Outcome events onto the outcomes topic, through the same identity connection as the request trigger."""
    from .adapters.azure.bus import BusOutcomePublisher, RolloutBus

    topic = os.environ.get("SHADOW_ROLLOUT_OUTCOMES_TOPIC")
    namespace = os.environ.get("ServiceBusConnection__fullyQualifiedNamespace")  # noqa: SIM112 - the trigger's name
    if not topic or not namespace:
        logging.getLogger(__name__).warning("no SHADOW_ROLLOUT_OUTCOMES_TOPIC: outcome events stay in-process")
        return InMemoryOutcomePublisher()
    return BusOutcomePublisher(RolloutBus(topic=topic, fully_qualified_namespace=namespace))


def _table_store_from_environment() -> RolloutStore:
    from .adapters.azure.store import TableRolloutStore

    client = _table_client(os.environ.get("SHADOW_ROLLOUT_TABLE", "rollouts"))
    if client is None:
        raise ShadowRolloutError("SHADOW_ROLLOUT_BACKEND=azure needs SHADOW_ROLLOUT_TABLES_ENDPOINT "
                                 "(or SHADOW_ROLLOUT_TABLES_CONNECTION_STRING)")
    return TableRolloutStore(client, create=True)


def _from_environment() -> Services:
    backend = os.environ.get("SHADOW_ROLLOUT_BACKEND", "sim")
    if backend == "azure":
        return azure_services()
    if backend == "sim":
        from .adapters.simulator.scenario import load_scenario
        from .adapters.simulator.world import FleetWorld
        from .scenarios import default_scenario_path

        path = os.environ.get("SHADOW_ROLLOUT_SCENARIO") or str(default_scenario_path())
        return simulator_services(FleetWorld(load_scenario(path)))
    raise ShadowRolloutError(
        f"SHADOW_ROLLOUT_BACKEND={backend!r} is not available in this build; use 'sim' or 'azure'"
    )


def utcnow() -> datetime:
    return datetime.now(UTC)
