"""The model registry on a real Blob service (Azurite): promotion only when better, at most one winner of a
race, and a rollout app that scores with the promoted version, records it, and falls back loudly."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from azure.storage.blob import ContainerClient

from shared.adapters.azure.blob_registry import BlobModelRegistry
from shared.adapters.azure.store import TableRolloutStore
from shared.adapters.memory_store import InMemoryRolloutStore
from shared.adapters.registry_model import RegistryFailureModel
from shared.adapters.simulator.scenario import load_scenario
from shared.domain.errors import PromotionConflict
from shared.domain.features import FEATURE_VERSION, FEATURES
from shared.domain.registry import (
    CARD_FILE,
    FEATURES_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    ModelManifest,
    PromotedPointer,
    Promotion,
    packaged_version,
)
from shared.learning.train import TrainingConfig, export_onnx, make_estimator
from shared.learning.trainer import TrainerConfig, TrainerRun, retrain_into_registry, seed_registry
from shared.ports import ModelRegistry
from shared.simulation import simulate
from tests.unit.test_retrain import store_with

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
FAST = {"n_estimators": 30, "min_rollouts": 4}


def model_dir(directory: Path, *, wrong: bool) -> Path:
    """A model that learnt failures follow feature 0 (or, ``wrong``, the opposite): built to be beaten or not."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2000, len(FEATURES))).astype(np.float32)
    est = make_estimator(TrainingConfig(scenarios=Path("."), n_estimators=30)).fit(x, ((x[:, 0] > 0.5) != wrong))
    directory.mkdir(parents=True, exist_ok=True)
    export_onnx(est, directory / MODEL_FILE)
    (directory / FEATURES_FILE).write_text(json.dumps({"version": FEATURE_VERSION, "features": list(FEATURES)}))
    return directory


@pytest.fixture
def container(azurite_blobs: str) -> Iterator[ContainerClient]:
    client = ContainerClient.from_connection_string(azurite_blobs, f"models{uuid.uuid4().hex[:12]}")
    yield client
    client.delete_container()


@pytest.fixture
def registry(container: ContainerClient) -> BlobModelRegistry:
    return BlobModelRegistry(container, create=True)


def runs(container: ContainerClient) -> list[TrainerRun]:
    return [TrainerRun.model_validate_json(container.download_blob(b.name).readall())
            for b in container.list_blobs(name_starts_with="runs/")]


def test_a_worse_candidate_is_refused_and_the_run_says_why(registry: BlobModelRegistry, container: ContainerClient,
                                                            tmp_path: Path) -> None:
    good = model_dir(tmp_path / "good", wrong=False)  # the packaged model: right
    older = store_with(6, 100, flip=True, seed=4, start_day=1)  # history that taught the wrong lesson
    newer = store_with(2, 100, flip=False, seed=5, start_day=20)  # the newest rollouts, held out
    run = retrain_into_registry([older, newer], registry, now=NOW, cfg=TrainerConfig(packaged_dir=good, **FAST))
    assert run.trained and not run.promoted
    assert "worse than the current model's" in run.reason
    pointer = registry.promoted()
    assert pointer is not None and pointer.version == packaged_version((good / MODEL_FILE).read_bytes())
    assert run.version not in registry.versions()  # a refused candidate is not written
    assert [r.reason for r in runs(container)] == [run.reason]


def in_tables(store: InMemoryRolloutStore, connection_string: str, name: str | None = None) -> TableRolloutStore:
    """The same recorded rollouts in the Table store on Azurite, where the trainer reads them in Azure."""
    from azure.data.tables import TableServiceClient

    client = TableServiceClient.from_connection_string(connection_string).get_table_client(
        name or f"rollouts{uuid.uuid4().hex[:8]}")
    table = TableRolloutStore(client, create=True)
    for rid in store.rollout_ids():
        table.put_rollout(rid, store.get_rollout(rid) or {})
        table.put_items(rid, "vm", store.get_items(rid, "vm"))
    return table


def test_a_better_candidate_is_promoted_with_its_manifest_and_card(registry: BlobModelRegistry,
                                                                    azurite_tables: str, tmp_path: Path) -> None:
    bad = model_dir(tmp_path / "bad", wrong=True)  # the packaged model: wrong
    history = in_tables(store_with(8, 100, flip=False, seed=3, start_day=1), azurite_tables)
    run = retrain_into_registry([history], registry, now=NOW, cfg=TrainerConfig(packaged_dir=bad, **FAST))
    assert run.promoted, run.reason
    pointer = registry.promoted()
    assert pointer is not None and pointer.version == run.version
    assert pointer.promotion.previous == packaged_version((bad / MODEL_FILE).read_bytes())
    manifest = ModelManifest.model_validate_json(registry.get_file(pointer.version, MANIFEST_FILE))
    assert manifest.data.recorded_rollouts == 8 and manifest.data.recorded_rows == 600  # 6 older rollouts fitted
    assert manifest.data.fleet_rows == 808 and manifest.data.labelled_share == round(800 / 808, 4)
    assert manifest.validation is not None and manifest.validation.promote
    card = registry.get_file(pointer.version, CARD_FILE).decode()
    assert f"{manifest.data.positives}" in card and "99.0% of 808 VM rows" in card


class RacingRegistry(ModelRegistry):
    """A registry whose ``promote`` waits until both trainers are about to promote: both read the same pointer."""

    def __init__(self, inner: ModelRegistry, barrier: threading.Barrier) -> None:
        self.inner, self.barrier, self.location = inner, barrier, inner.location

    def put_version(self, version: str, files: Mapping[str, bytes]) -> None:
        self.inner.put_version(version, files)

    def get_file(self, version: str, name: str) -> bytes:
        return self.inner.get_file(version, name)

    def versions(self) -> list[str]:
        return self.inner.versions()

    def promoted(self) -> PromotedPointer | None:
        return self.inner.promoted()

    def promote(self, promotion: Promotion, *, expected_etag: str | None) -> PromotedPointer:
        self.barrier.wait(timeout=120)
        return self.inner.promote(promotion, expected_etag=expected_etag)

    def put_run(self, name: str, report: bytes) -> None:
        self.inner.put_run(name, report)


def test_two_trainers_racing_promote_at_most_one(registry: BlobModelRegistry, tmp_path: Path) -> None:
    bad = model_dir(tmp_path / "bad", wrong=True)
    seed_registry(registry, bad, now=NOW)  # the packaged model is in use; both candidates beat it
    history = store_with(8, 100, flip=False, seed=3, start_day=1)
    racing = RacingRegistry(registry, threading.Barrier(2))
    results: dict[int, TrainerRun] = {}

    def trainer(seed: int) -> None:
        results[seed] = retrain_into_registry([history], racing, now=NOW + timedelta(seconds=seed),
                                              cfg=TrainerConfig(packaged_dir=bad, seed=seed, **FAST))

    threads = [threading.Thread(target=trainer, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(results) == 2 and all(r.trained for r in results.values())
    winners = [r for r in results.values() if r.promoted]
    losers = [r for r in results.values() if not r.promoted]
    assert len(winners) == 1, [r.reason for r in results.values()]
    assert "not promoted, although better" in losers[0].reason
    pointer = registry.promoted()
    assert pointer is not None and pointer.version == winners[0].version


def test_the_pointer_is_a_compare_and_swap_on_its_etag(registry: BlobModelRegistry) -> None:
    first = registry.promote(Promotion(version="a", promoted_at=NOW, reason="first"), expected_etag=None)
    with pytest.raises(PromotionConflict):
        registry.promote(Promotion(version="b", promoted_at=NOW, reason="also first"), expected_etag=None)
    second = registry.promote(Promotion(version="c", promoted_at=NOW, reason="next"), expected_etag=first.etag)
    with pytest.raises(PromotionConflict):
        registry.promote(Promotion(version="d", promoted_at=NOW, reason="stale"), expected_etag=first.etag)
    pointer = registry.promoted()
    assert pointer is not None and pointer.version == "c" and pointer.etag == second.etag


# ---------------------------------------------------------------------------------------------- the rollout app
class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def publish(registry: ModelRegistry, version: str, directory: Path, *, feature_version: str = FEATURE_VERSION,
            expected: str | None = None) -> PromotedPointer:
    schema = {"version": feature_version, "features": list(FEATURES)}
    registry.put_version(version, {MODEL_FILE: (directory / MODEL_FILE).read_bytes(),
                                   FEATURES_FILE: json.dumps(schema).encode()})
    return registry.promote(Promotion(version=version, promoted_at=NOW, reason="test"), expected_etag=expected)


def model_decisions(run: object) -> list[dict[str, object]]:
    store = run.services.store  # type: ignore[attr-defined]
    rid = store.rollout_ids()[0]
    return [d for d in store.decisions(rid) if d["kind"] == "model_version"]


def test_a_rollout_records_the_version_it_used_and_picks_up_a_new_one_without_restart(
        registry: BlobModelRegistry, tmp_path: Path) -> None:
    scenario = load_scenario(ROOT / "tests" / "scenarios" / "good-change.yaml")
    first = publish(registry, "v1", model_dir(tmp_path / "v1", wrong=False))
    clock = Clock()
    model = RegistryFailureModel(registry, now=clock, recheck=timedelta(minutes=5), cache=tmp_path / "cache")
    [d1] = model_decisions(simulate(scenario, model=model))
    assert d1["data"] == {"version": "v1", "source": "registry", "fallback": False, "fallback_reason": ""}
    publish(registry, "v2", model_dir(tmp_path / "v2", wrong=True), expected=first.etag)
    clock.now += timedelta(minutes=6)  # past the staleness bound: the next prediction re-reads the pointer
    [d2] = model_decisions(simulate(scenario, model=model))
    assert d2["data"]["version"] == "v2" and not d2["data"]["fallback"]


def test_a_schema_mismatch_falls_back_to_the_packaged_model_with_a_recorded_reason(
        registry: BlobModelRegistry, tmp_path: Path) -> None:
    packaged = model_dir(tmp_path / "packaged", wrong=False)
    publish(registry, "old-schema", model_dir(tmp_path / "old", wrong=False), feature_version="0")
    model = RegistryFailureModel(registry, now=Clock(), packaged=packaged, cache=tmp_path / "cache")
    [d] = model_decisions(simulate(load_scenario(ROOT / "tests" / "scenarios" / "good-change.yaml"), model=model))
    assert d["data"]["fallback"] and d["data"]["source"] == "packaged"
    assert d["data"]["version"] == packaged_version((packaged / MODEL_FILE).read_bytes())
    assert "promoted version old-schema refused: feature schema mismatch" in str(d["data"]["fallback_reason"])
    assert str(d["reason"]).startswith("FALLBACK to packaged-")


def test_below_the_minimum_of_recorded_rollouts_no_retrain_is_attempted(registry: BlobModelRegistry,
                                                                        tmp_path: Path) -> None:
    store = InMemoryRolloutStore()
    run = retrain_into_registry([store], registry, now=NOW, cfg=TrainerConfig(packaged_dir=tmp_path / "none"))
    assert not run.trained and "no retrain: 0 recorded rollouts" in run.reason and "minimum 20" in run.reason
    assert registry.promoted() is None  # no packaged model to seed with, nothing promoted


def test_retrain_on_demand_reads_the_store_and_seeds_the_registry_with_the_packaged_model(
        azurite_tables: str, azurite_blobs: str, container: ContainerClient) -> None:
    """`shadow-rollout retrain --registry URL`, as documented: rollouts recorded in the Table store (Azurite),
    too few of them to retrain on, so it says so; the packaged model becomes the registry's first version."""
    from dataclasses import replace

    from azure.data.tables import TableServiceClient

    from tests.e2e.test_cli import cli

    table = f"rollouts{uuid.uuid4().hex[:8]}"
    client = TableServiceClient.from_connection_string(azurite_tables).get_table_client(table)
    simulate(load_scenario(ROOT / "tests" / "scenarios" / "crash-one-sku.yaml"),
             adapt=lambda s: replace(s, store=TableRolloutStore(client, create=True)))
    url = f"http://127.0.0.1/devstoreaccount1/{container.container_name}"
    p = cli("retrain", "--registry", url, "--min-rollouts", "2",
            env={"SHADOW_ROLLOUT_TABLES_CONNECTION_STRING": azurite_tables, "SHADOW_ROLLOUT_TABLE": table,
                 "SHADOW_ROLLOUT_REGISTRY_CONNECTION_STRING": azurite_blobs})
    assert p.returncode == 0, p.stderr
    assert "reading recorded rollouts from the rollout store" in p.stderr
    assert "not retrained: no retrain: 1 recorded rollouts with labelled VMs, fewer than the minimum 2" in \
        " ".join(p.stdout.split())
    pointer = BlobModelRegistry(container).promoted()
    assert pointer is not None and pointer.version == packaged_version((ROOT / "model" / MODEL_FILE).read_bytes())
    assert len(runs(container)) == 1


def test_the_trainer_app_trains_on_the_packaged_rows_and_validates_on_the_validation_families_rows(
        registry: BlobModelRegistry, container: ContainerClient, azurite_tables: str, azurite_blobs: str,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The trainer app's own run (app settings only): model/training-rows.npz and model/validation-rows.npz, as
    staged into its package, are read and used, and the version's manifest counts their rows."""
    from shared.learning.trainer import (
        PACKAGED_ROWS_FILE,
        VALIDATION_ROWS_FILE,
        load_rows,
        run_from_environment,
    )

    assert registry.container.exists()  # infra makes the container; the trainer's identity may only write blobs
    table = f"rollouts{uuid.uuid4().hex[:8]}"
    in_tables(store_with(8, 100, flip=False, seed=3, start_day=1), azurite_tables, table)
    for name, value in {"SHADOW_ROLLOUT_REGISTRY_URL": f"http://127.0.0.1/devstoreaccount1/{container.container_name}",
                        "SHADOW_ROLLOUT_REGISTRY_CONNECTION_STRING": azurite_blobs,
                        "SHADOW_ROLLOUT_TABLES_CONNECTION_STRING": azurite_tables,
                        "SHADOW_ROLLOUT_TABLE": table, "SHADOW_ROLLOUT_MIN_ROLLOUTS": "4"}.items():
        monkeypatch.setenv(name, value)
    for name in ("SHADOW_ROLLOUT_TRAINER_PACKAGED_ROWS", "SHADOW_ROLLOUT_TRAINER_VALIDATION_ROWS"):
        monkeypatch.delenv(name, raising=False)
    packaged = load_rows(ROOT / "model" / PACKAGED_ROWS_FILE)
    validation = load_rows(ROOT / "model" / VALIDATION_ROWS_FILE)
    with caplog.at_level("WARNING"):
        run = run_from_environment(NOW, TrainerConfig(n_estimators=20))
    assert run.trained and run.manifest is not None, run.reason
    assert "no rows at" not in caplog.text
    data, checked = run.manifest.data, run.manifest.validation
    assert data.packaged_rows == len(packaged.y) > 10_000 and data.recorded_rows == 600
    assert data.positives > int(packaged.y.sum())  # the packaged failures, and the fleet's own
    assert checked is not None and checked.simulated_rows == len(validation.y) > 0
    assert checked.rows == len(validation.y) + data.held_out_rows
    assert set(packaged.scenario_hashes) <= set(run.manifest.scenario_hashes)
    assert set(validation.scenario_hashes) <= set(run.manifest.scenario_hashes)
    assert [r.version for r in runs(container)] == [run.version]
