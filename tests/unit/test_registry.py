"""The model registry's rules on the simulator's (file) registry, the loader's bounded staleness, honest labels,
and the split between the rollout app and the trainer."""

from __future__ import annotations

import ast
import importlib.util
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from shared.adapters.azure.blob_registry import BlobModelRegistry
from shared.adapters.file_registry import FileModelRegistry
from shared.adapters.memory_store import InMemoryRolloutStore
from shared.adapters.registry_model import RegistryFailureModel
from shared.bootstrap import model_registry
from shared.domain.decisions import VmRisk, model_decision
from shared.domain.errors import ConfigurationError, Conflict, ModelError, PromotionConflict
from shared.domain.features import FEATURE_VERSION, FEATURES
from shared.domain.registry import FEATURES_FILE, MODEL_FILE, ModelInUse, ModelSource, Promotion
from shared.learning.retrain import label_of
from shared.learning.train import TrainingConfig, export_onnx, make_estimator
from shared.learning.trainer import PackagedRows, TrainerConfig, retrain_into_registry
from shared.runtime.local_durable import indexed_functions
from tests.infra.test_app_settings import app_modules

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def promotion(version: str) -> Promotion:
    return Promotion(version=version, promoted_at=NOW, reason="test")


def test_versions_are_immutable_but_rewriting_the_same_bytes_is_harmless(tmp_path: Path) -> None:
    registry = FileModelRegistry(tmp_path)
    registry.put_version("v1", {MODEL_FILE: b"onnx"})
    registry.put_version("v1", {MODEL_FILE: b"onnx"})  # an activity or a trainer run twice
    with pytest.raises(Conflict, match="versions are immutable"):
        registry.put_version("v1", {MODEL_FILE: b"other"})
    assert registry.get_file("v1", MODEL_FILE) == b"onnx" and registry.versions() == ["v1"]


def test_racing_promotions_from_the_same_pointer_let_exactly_one_through(tmp_path: Path) -> None:
    registry = FileModelRegistry(tmp_path)
    start = registry.promote(promotion("v0"), expected_etag=None)
    barrier = threading.Barrier(8)
    won: list[str] = []
    lost: list[str] = []

    def contender(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            registry.promote(promotion(f"v{i + 1}"), expected_etag=start.etag)
            won.append(f"v{i + 1}")
        except PromotionConflict:
            lost.append(f"v{i + 1}")

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(won) == 1 and len(lost) == 7
    pointer = registry.promoted()
    assert pointer is not None and pointer.version == won[0]


def _publish(registry: FileModelRegistry, version: str, *, expected: str | None) -> str:
    registry.put_version(version, {MODEL_FILE: (ROOT / "model" / MODEL_FILE).read_bytes(),
                                   FEATURES_FILE: json.dumps({"version": FEATURE_VERSION,
                                                              "features": list(FEATURES)}).encode()})
    return registry.promote(promotion(version), expected_etag=expected).etag


def test_the_loader_rereads_the_pointer_at_most_once_per_bound(tmp_path: Path) -> None:
    registry = FileModelRegistry(tmp_path / "registry")
    etag = _publish(registry, "v1", expected=None)
    clock = [NOW]
    model = RegistryFailureModel(registry, now=lambda: clock[0], recheck=timedelta(minutes=5),
                                 cache=tmp_path / "cache")
    assert model.in_use() == ModelInUse(version="v1", source=ModelSource.REGISTRY)
    _publish(registry, "v2", expected=etag)
    clock[0] = NOW + timedelta(minutes=4)
    assert model.in_use().version == "v1"  # within the bound: no read
    clock[0] = NOW + timedelta(minutes=5)
    assert model.in_use().version == "v2"


def test_an_empty_registry_falls_back_to_the_packaged_model_saying_so(tmp_path: Path) -> None:
    model = RegistryFailureModel(FileModelRegistry(tmp_path / "registry"), now=lambda: NOW, cache=tmp_path / "c")
    used = model.in_use()
    assert used.source is ModelSource.PACKAGED and used.version.startswith("packaged-")
    assert "no version is promoted" in used.fallback_reason


def test_a_pointer_naming_a_path_instead_of_a_version_is_refused(tmp_path: Path) -> None:
    registry = FileModelRegistry(tmp_path / "registry")
    registry.promote(promotion("../../etc"), expected_etag=None)
    model = RegistryFailureModel(registry, now=lambda: NOW, cache=tmp_path / "cache")
    used = model.in_use()
    assert used.source is ModelSource.PACKAGED and "'../../etc' is not a valid id" in used.fallback_reason
    with pytest.raises(ModelError, match="not a valid id"):
        registry.put_version("a/b", {MODEL_FILE: b"x"})


def test_without_a_packaged_model_the_fallback_is_the_judge_and_says_why(tmp_path: Path) -> None:
    model = RegistryFailureModel(FileModelRegistry(tmp_path / "registry"), now=lambda: NOW,
                                 packaged=tmp_path / "none", cache=tmp_path / "c")
    used = model.in_use()
    assert used.source is ModelSource.JUDGE and "no packaged model in" in used.fallback_reason


def test_the_model_decision_names_the_version_and_a_fallback_loudly() -> None:
    risks = [VmRisk("a", "k", 0.1, "model", model_version="packaged-x"),
             VmRisk("b", "k", 0.2, "judge (fallback: y)", fallback="y", model_version="packaged-x")]
    fallback = ModelInUse(version="packaged-x", source=ModelSource.PACKAGED, fallback_reason="registry down")
    d = model_decision(fallback, risks)
    assert d.kind == "model_version" and d.reason.startswith("FALLBACK to packaged-x: registry down")
    assert "scored 1 of 2 VMs" in d.reason and d.data["fallback"] is True
    # a model promoted after the prediction is not credited with it, nor its fallback reason
    d = model_decision(ModelInUse(version="v9", source=ModelSource.REGISTRY), risks)
    assert (d.data["version"], d.data["source"], d.data["fallback"]) == ("packaged-x", "packaged", False)


@pytest.mark.parametrize(("vm", "state", "label"), [
    ({"features": {}}, "completed", None),                                # never changed (or skipped)
    ({"apply": {}, "skipped": False}, "completed", 0),                    # changed, healthy through the watch
    ({"apply": {}, "rollback": {"state": "verified"}}, "completed", 1),   # the checks or the watch failed it
    ({"apply": {}, "rollback": {"state": "queued"}}, "aborted", 1),
    ({"apply": {}}, "aborted", None),                                     # changed, but not watched to the end
    ({"apply": {}}, "failed", None),
    ({"apply": {}}, "halted", 0),
])
def test_labels_are_what_production_showed_and_nothing_else(vm: dict[str, object], state: str,
                                                            label: int | None) -> None:
    assert label_of(vm, state) == label


def test_registry_urls_name_a_blob_container_or_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.delenv("SHADOW_ROLLOUT_REGISTRY_CONNECTION_STRING", raising=False)
    assert isinstance(model_registry(str(tmp_path)), FileModelRegistry)
    assert isinstance(model_registry(tmp_path.as_uri()), FileModelRegistry)
    blob = model_registry("https://acct.blob.core.windows.net/models")
    assert isinstance(blob, BlobModelRegistry) and blob.location == "https://acct.blob.core.windows.net/models"
    with pytest.raises(ConfigurationError, match="must be https"):
        model_registry("https://acct.blob.core.windows.net/")
    with pytest.raises(ConfigurationError, match="registry URL"):
        model_registry("ftp://somewhere/models")


TRAINING = ("sklearn", "skl2onnx", "onnx", "shared.learning")


def test_the_rollout_app_imports_nothing_from_the_training_code() -> None:
    modules = {p.relative_to(ROOT).as_posix() for p in app_modules()}
    assert "shared/adapters/registry_model.py" in modules  # the scan does see the model loader
    assert not [m for m in modules if m.startswith("shared/learning/")], modules
    for path in app_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            bad = [n for n in names if n.split(".")[0] in TRAINING or n.startswith("shared.learning")]
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_the_trainer_app_runs_the_retraining_on_its_schedule_setting() -> None:
    spec = importlib.util.spec_from_file_location("trainer_function_app", ROOT / "trainer" / "function_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (function,) = indexed_functions(module.app)
    assert function.get_function_name() == "retrain_failure_model"
    assert function.get_trigger().schedule == "%SHADOW_ROLLOUT_RETRAIN_SCHEDULE%"  # type: ignore[attr-defined]
    requirements = (ROOT / "trainer" / "requirements.txt").read_text()
    assert all(dep in requirements for dep in ("scikit-learn", "skl2onnx", "onnx>=", "azure-storage-blob"))


def _history(feature: int, rollouts: int = 8, vms: int = 100) -> InMemoryRolloutStore:
    """Recorded rollouts whose failures follow one feature."""
    rng = np.random.default_rng(feature)
    store = InMemoryRolloutStore()
    for r in range(rollouts):
        rid = f"f{feature}-{r}"
        store.put_rollout(rid, {"state": "completed", "started_at": f"2026-01-{r + 1:02d}T00:00:00+00:00"})
        items = {}
        for v in range(vms):
            x = rng.normal(size=len(FEATURES))
            items[f"{rid}-{v}"] = {"apply": {"status": "ok"}, "features": dict(zip(FEATURES, x.tolist(), strict=True)),
                                   **({"rollback": {"state": "verified"}} if x[feature] > 0.5 else {})}
        store.put_items(rid, "vm", items)
    return store


def _rows(feature: int, n: int = 2000) -> PackagedRows:
    x = np.random.default_rng(100 + feature).normal(size=(n, len(FEATURES))).astype(np.float32)
    return PackagedRows(x, (x[:, feature] > 0.5).astype(np.int8), np.full(n, 0.5))


def test_a_candidate_that_forgets_what_the_simulator_validates_is_refused(tmp_path: Path) -> None:
    """The fleet so far only failed on feature 1; the validation families still fail on feature 0, which the
    model in use knows. On the recorded rollouts alone the candidate wins; with the families, it is refused."""
    history = _history(feature=1)
    runs = {}
    for name, validation in (("recorded only", None), ("with the families", _rows(feature=0))):
        registry = FileModelRegistry(tmp_path / name)
        packaged = _packaged_model(tmp_path / f"packaged-{name}", feature=0)
        runs[name] = retrain_into_registry([history], registry, now=NOW, validation=validation,
                                           cfg=TrainerConfig(packaged_dir=packaged, n_estimators=30, min_rollouts=4))
    assert runs["recorded only"].promoted, runs["recorded only"].reason
    refused = runs["with the families"]
    assert refused.trained and not refused.promoted and "worse than the current model's" in refused.reason
    assert refused.manifest is not None and refused.manifest.validation is not None
    assert refused.manifest.validation.simulated_rows == 2000 and refused.manifest.validation.rows == 2200


def _packaged_model(directory: Path, *, feature: int) -> Path:
    rows = _rows(feature)
    est = make_estimator(TrainingConfig(scenarios=Path("."), n_estimators=30)).fit(rows.X, rows.y)
    directory.mkdir(parents=True, exist_ok=True)
    export_onnx(est, directory / MODEL_FILE)
    (directory / FEATURES_FILE).write_text(json.dumps({"version": FEATURE_VERSION, "features": list(FEATURES)}))
    return directory
