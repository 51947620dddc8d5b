"""The failure model the rollout app scores with: the registry's promoted version, re-checked on a bound.

At start and then at most every ``recheck`` (by the injected clock) the ``promoted`` pointer is read; a new
version is downloaded once, its feature schema checked, and used from the next prediction on, without a
restart. Whatever cannot be used — no pointer yet, a registry that does not answer, a version whose schema
this code does not compute — falls back to the model packaged with the app (the registry's first version),
or to the judge without one, loudly: a warning in the log and a ``model_version`` decision in every rollout
scored that way, with the reason.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from ..domain.decisions import VmRisk
from ..domain.errors import ModelError, ShadowRolloutError
from ..domain.features import FeatureTable
from ..domain.registry import FEATURES_FILE, MODEL_FILE, ModelInUse, ModelSource, check_version
from ..ports import FailureModel, ModelRegistry
from .onnx_model import MODEL_DIR, OnnxFailureModel, model_available
from .statistical_model import StatisticalFailureModel

log = logging.getLogger(__name__)
DEFAULT_RECHECK = timedelta(minutes=5)


class RegistryFailureModel(FailureModel):
    name = "registry"

    def __init__(self, registry: ModelRegistry, *, now: Callable[[], datetime], packaged: Path = MODEL_DIR,
                 recheck: timedelta = DEFAULT_RECHECK, cache: Path | None = None) -> None:
        self.registry = registry
        self.now = now
        self.packaged = packaged
        self.recheck = recheck
        self.cache = cache or Path(tempfile.mkdtemp(prefix="shadow-rollout-models-"))
        self._lock = threading.Lock()
        self._checked_at: datetime | None = None
        self._model: FailureModel | None = None
        self._in_use: ModelInUse | None = None
        self._refused: dict[str, str] = {}

    # ------------------------------------------------------------------------------------------------ loading
    def _fallback(self, reason: str) -> tuple[FailureModel, ModelInUse]:
        log.warning("failure model: falling back from the registry %s: %s", self.registry.location, reason)
        if model_available(self.packaged):
            try:
                packaged = OnnxFailureModel(self.packaged)
                return packaged, ModelInUse(version=packaged.version, source=ModelSource.PACKAGED,
                                            fallback_reason=reason)
            except ModelError as exc:
                reason = f"{reason}; the packaged model is unusable too: {exc}"
        else:
            reason = f"{reason}; no packaged model in {self.packaged}"
        judge = StatisticalFailureModel()
        return judge, ModelInUse(version=judge.name, source=ModelSource.JUDGE, fallback_reason=reason)

    def _load(self, version: str) -> OnnxFailureModel:
        directory = self.cache / check_version(version)
        if not (directory / MODEL_FILE).is_file():
            self.cache.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=self.cache, prefix=f".{version}."))
            for name in (FEATURES_FILE, MODEL_FILE):
                (staging / name).write_bytes(self.registry.get_file(version, name))
            staging.rename(directory)
        return OnnxFailureModel(directory, version=version, source=ModelSource.REGISTRY)

    def _refresh(self) -> tuple[FailureModel, ModelInUse]:
        with self._lock:
            now = self.now()
            due = self._checked_at is None or now - self._checked_at >= self.recheck or now < self._checked_at
            if due:
                self._checked_at = now
                self._model, self._in_use = self._check(self._model, self._in_use)
            assert self._model is not None and self._in_use is not None
            return self._model, self._in_use

    def _check(self, model: FailureModel | None, in_use: ModelInUse | None) -> tuple[FailureModel, ModelInUse]:
        try:
            pointer = self.registry.promoted()
        except ShadowRolloutError as exc:
            if model is not None and in_use is not None:
                log.warning("failure model: cannot read the registry's pointer (%s); keeping %s", exc, in_use.version)
                return model, in_use
            return self._fallback(f"cannot read the registry's promoted pointer: {exc}")
        if pointer is None:
            return self._fallback(f"no version is promoted in {self.registry.location} yet")
        if in_use is not None and model is not None and in_use.version == pointer.version \
                and in_use.source is ModelSource.REGISTRY:
            return model, in_use
        if pointer.version in self._refused:
            return (model, in_use) if model is not None and in_use is not None and in_use.is_fallback \
                else self._fallback(self._refused[pointer.version])
        try:
            loaded = self._load(pointer.version)
        except ModelError as exc:  # for good: this code cannot score with it
            self._refused[pointer.version] = f"promoted version {pointer.version} refused: {exc}"
            return self._fallback(self._refused[pointer.version])
        except (ShadowRolloutError, OSError) as exc:  # perhaps transient: tried again at the next check
            if model is not None and in_use is not None:
                log.warning("failure model: cannot load %s (%s); keeping %s", pointer.version, exc, in_use.version)
                return model, in_use
            return self._fallback(f"cannot load promoted version {pointer.version}: {exc}")
        log.info("failure model: now scoring with promoted version %s", pointer.version)
        return loaded, loaded.in_use()

    # ------------------------------------------------------------------------------------------------ the port
    def predict(self, table: FeatureTable) -> list[VmRisk]:
        model, in_use = self._refresh()
        return [replace(r, model_version=in_use.version) for r in model.predict(table)]

    def in_use(self) -> ModelInUse:
        return self._refresh()[1]
