"""The trainer: learn from the fleet's own recorded rollouts, promote into the model registry only when better.

Runs outside the rollout app (the trainer function app, or ``shadow-rollout retrain --registry URL``); the
rollout app only reads the registry. One run:

1. makes sure the packaged model is the registry's first version (promoted if nothing is);
2. reads the labelled history (:func:`~shared.learning.retrain.history_rows`); below ``min_rollouts`` recorded
   rollouts nothing is trained and the run says so;
3. fits a candidate on the packaged training rows plus the older recorded rollouts;
4. scores the candidate and what is in use (the promoted version, else the judge) on the newest rollouts,
   held out, plus the simulator's validation families when given, and asks the one rule
   (:func:`~shared.learning.retrain.candidate_beats`);
5. if the rule says so, writes the version (ONNX, feature schema, manifest, card) and moves the pointer with
   the ETag it read in step 4: of two trainers racing, at most one promotes.

Every run leaves a report under ``runs/`` in the registry, promoted or not, with the reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..adapters.onnx_model import MODEL_DIR, OnnxFailureModel, model_available
from ..domain.errors import ModelError, PromotionConflict, ShadowRolloutError
from ..domain.features import FEATURE_VERSION, FEATURES
from ..domain.registry import (
    CARD_FILE,
    FEATURES_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    ModelManifest,
    PromotedPointer,
    Promotion,
    TrainingData,
    Validation,
    packaged_version,
    trained_version,
)
from ..ports import ModelRegistry, RolloutStore
from .retrain import candidate_beats, history_rows, split_by_time

log = logging.getLogger(__name__)
MIN_ROLLOUTS = 20
"""Fewer recorded rollouts than this and no retrain is tried: a held-out quarter of fewer than five rollouts
says more about those rollouts than about the candidate."""


@dataclass(frozen=True)
class PackagedRows:
    """Labelled rows shipped with the trainer (simulated rollouts, every VM labelled), and where they came from."""

    X: np.ndarray
    y: np.ndarray
    judge: np.ndarray
    """The statistical judge's score of each row: what is in use when no model is."""
    scenario_hashes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> PackagedRows:
        return cls(np.zeros((0, len(FEATURES)), dtype=np.float32), np.zeros(0, dtype=np.int8), np.zeros(0))

    @classmethod
    def from_scenarios(cls, paths: Sequence[Path], seed_offsets: Sequence[int]) -> PackagedRows:
        """Dry rollouts of the scenario files, labelled by the simulator's truth (complete rows only)."""
        from .dataset import collect

        d = collect(paths, seed_offsets)
        ok = np.isfinite(d.X).all(axis=1) & d.observable.astype(bool)
        return cls(d.X[ok].astype(np.float32), d.y[ok].astype(np.int8), d.judge_score[ok].astype(np.float64),
                   {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths})


@dataclass(frozen=True)
class TrainerConfig:
    min_rollouts: int = MIN_ROLLOUTS
    seed: int = 0
    n_estimators: int = 200
    max_leaf_nodes: int = 64
    packaged_dir: Path = MODEL_DIR


class TrainerRun(BaseModel):
    """What one trainer run did and why; kept under ``runs/`` in the registry."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    trained: bool
    promoted: bool
    reason: str
    version: str | None = None
    in_use: str | None = None
    manifest: ModelManifest | None = None


def _record(registry: ModelRegistry, run: TrainerRun) -> TrainerRun:
    (log.info if run.promoted else log.warning)("trainer: promoted=%s: %s", run.promoted, run.reason)
    registry.put_run(f"{run.at:%Y%m%dT%H%M%S%fZ}.json", run.model_dump_json(indent=2).encode())
    return run


def seed_registry(registry: ModelRegistry, packaged_dir: Path, *, now: datetime) -> PromotedPointer | None:
    """The packaged model as the registry's first version, promoted when nothing is; the pointer as it is after.

    Safe to run twice and by two trainers at once (immutable version, conditional first promotion).
    """
    pointer = registry.promoted()
    if pointer is not None or not model_available(packaged_dir):
        return pointer
    onnx = (packaged_dir / MODEL_FILE).read_bytes()
    version = packaged_version(onnx)
    meta = json.loads((packaged_dir / FEATURES_FILE).read_text())
    manifest = ModelManifest(version=version, created_at=datetime.fromisoformat(meta["trained_at"])
                             if meta.get("trained_at") else now, feature_version=str(meta.get("version")),
                             features=list(meta.get("features", [])), seed=int(meta.get("seed", 0)),
                             estimator=str(meta.get("estimator", "")), data=TrainingData(),
                             scenario_hashes={str(s): "" for s in meta.get("scenarios", [])})
    card = (packaged_dir / "README.md").read_bytes() if (packaged_dir / "README.md").is_file() else \
        b"# The packaged failure model\n\nShipped in the app package; see model/README.md in the repository.\n"
    registry.put_version(version, {MODEL_FILE: onnx, FEATURES_FILE: (packaged_dir / FEATURES_FILE).read_bytes(),
                                   MANIFEST_FILE: manifest.model_dump_json(indent=2).encode(), CARD_FILE: card})
    try:
        return registry.promote(Promotion(version=version, promoted_at=now, reason="the packaged model: the "
                                          "registry's first version"), expected_etag=None)
    except PromotionConflict:
        return registry.promoted()


def _current_scores(registry: ModelRegistry, pointer: PromotedPointer | None, X: np.ndarray, judge: np.ndarray
                    ) -> tuple[str, np.ndarray]:
    """What is in use, scoring the validation rows: the promoted version, else the judge (as recorded)."""
    if pointer is not None:
        with tempfile.TemporaryDirectory(prefix="shadow-rollout-current-") as tmp:
            directory = Path(tmp)
            try:
                for name in (MODEL_FILE, FEATURES_FILE):
                    (directory / name).write_bytes(registry.get_file(pointer.version, name))
                model = OnnxFailureModel(directory, version=pointer.version)
                return pointer.version, model.probabilities(X)
            except ModelError as exc:
                log.warning("trainer: the promoted version %s cannot score (%s); comparing with the judge",
                            pointer.version, exc)
    return "the statistical judge", np.nan_to_num(judge, nan=0.5)


def _card(manifest: ModelManifest) -> str:
    d, v = manifest.data, manifest.validation
    lines = [f"# Failure model {manifest.version}", "",
             f"Trained {manifest.created_at.isoformat()} by the trainer (seed {manifest.seed}): {manifest.estimator}.",
             "", "## Data", "",
             f"- packaged rows (simulated rollouts, every VM labelled): {d.packaged_rows}",
             f"- recorded rollouts: {d.recorded_rollouts}; labelled rows used for fitting: {d.recorded_rows}",
             f"- positives (failures) among all fitted rows: {d.positives}",
             f"- share of the recorded fleet that production could label: {d.labelled_share:.1%} of "
             f"{d.fleet_rows} VM rows (skipped and never-changed VMs are unlabelled and left out)",
             f"- held out: the newest {d.held_out_rollouts} rollouts ({d.held_out_rows} rows)"]
    if v is not None:
        lines += ["", f"## Validation: {v.rows} rows never trained on ({v.rows - v.simulated_rows} of the held-out "
                      f"recorded rollouts, {v.simulated_rows} of the simulator's validation families)", "",
                  f"- candidate: ROC-AUC {v.candidate.get('roc_auc')}, Brier {v.candidate.get('brier')}",
                  f"- in use ({v.current_version}): ROC-AUC {v.current.get('roc_auc')}, Brier {v.current.get('brier')}",
                  f"- decision: {v.reason}"]
    return "\n".join(lines) + "\n"


def retrain_into_registry(stores: Sequence[RolloutStore], registry: ModelRegistry, *, now: datetime,
                          packaged: PackagedRows | None = None, validation: PackagedRows | None = None,
                          cfg: TrainerConfig | None = None) -> TrainerRun:
    """One trainer run (see the module's docstring); the result is also kept in the registry.

    ``validation``: rows of the simulator's validation families (never trained on), scored with the held-out
    recorded rollouts, so a candidate that forgets a failure mode the fleet has not shown yet is refused.
    """
    from .metrics import figures
    from .train import TrainingConfig, export_onnx, make_estimator

    cfg = cfg or TrainerConfig()
    packaged = packaged or PackagedRows.empty()
    try:
        seed_registry(registry, cfg.packaged_dir, now=now)
    except ShadowRolloutError as exc:
        log.warning("trainer: could not seed the registry with the packaged model: %s", exc)
    h = history_rows(stores)
    base = {"at": now, "trained": False, "promoted": False}
    if h.rollouts < cfg.min_rollouts:
        return _record(registry, TrainerRun(**base, reason=(
            f"no retrain: {h.rollouts} recorded rollouts with labelled VMs, fewer than the minimum "
            f"{cfg.min_rollouts} ({len(h.y)} labelled rows, {h.labelled_share:.0%} of {h.fleet_rows} VM rows)")))
    ok = np.isfinite(h.X).all(axis=1)
    split = split_by_time(h, ok)
    if len(set(h.y[split.test].tolist())) < 2:
        return _record(registry, TrainerRun(**base, reason=(
            f"no retrain: the {split.held_rollouts} newest rollouts held out for validation show "
            f"{int(h.y[split.test].sum())} failures in {int(split.test.sum())} rows; nothing to compare on")))
    X = np.vstack([packaged.X, h.X[split.fit]])
    y = np.concatenate([packaged.y, h.y[split.fit]])
    if len(set(y.tolist())) < 2:
        return _record(registry, TrainerRun(**base, reason=f"no retrain: the {len(y)} training rows show one "
                                                           "outcome only"))
    validation = validation or PackagedRows.empty()
    X_test = np.vstack([h.X[split.test], validation.X])
    y_test = np.concatenate([h.y[split.test], validation.y])
    pointer = registry.promoted()
    current_name, current_p = _current_scores(registry, pointer, X_test,
                                              np.concatenate([h.judge[split.test], validation.judge]))
    train_cfg = TrainingConfig(scenarios=Path("."), seed=cfg.seed, n_estimators=cfg.n_estimators,
                               max_leaf_nodes=cfg.max_leaf_nodes)
    estimator = make_estimator(train_cfg).fit(X, y)
    cand = figures(y_test, np.asarray(estimator.predict_proba(X_test))[:, 1])
    cur = figures(y_test, current_p)
    verdict = candidate_beats(cand, cur, current_name=current_name, rows=len(y_test))
    with tempfile.TemporaryDirectory(prefix="shadow-rollout-candidate-") as tmp:
        export_onnx(estimator, Path(tmp) / MODEL_FILE)
        onnx = (Path(tmp) / MODEL_FILE).read_bytes()
    version = trained_version(onnx, now)
    data = TrainingData(packaged_rows=len(packaged.y), recorded_rollouts=h.rollouts,
                        recorded_rows=int(split.fit.sum()), positives=int(y.sum()), fleet_rows=h.fleet_rows,
                        labelled_share=h.labelled_share, held_out_rollouts=split.held_rollouts,
                        held_out_rows=int(split.test.sum()))
    checked = Validation(rows=len(y_test), simulated_rows=len(validation.y), positives=int(y_test.sum()),
                         candidate=cand, current=cur, current_version=current_name, promote=verdict.promote,
                         reason=verdict.reason)
    manifest = ModelManifest(version=version, created_at=now, feature_version=FEATURE_VERSION,
                             features=list(FEATURES), seed=cfg.seed, estimator=_describe(train_cfg), data=data,
                             scenario_hashes={**packaged.scenario_hashes, **validation.scenario_hashes},
                             validation=checked,
                             parent=pointer.version if pointer else None)
    trained = {**base, "trained": True, "version": version, "in_use": current_name, "manifest": manifest}
    if not verdict.promote:
        return _record(registry, TrainerRun(**trained, reason=verdict.reason))
    schema = {"version": FEATURE_VERSION, "features": list(FEATURES), "trained_at": now.isoformat(),
              "seed": cfg.seed, "estimator": manifest.estimator}
    registry.put_version(version, {MODEL_FILE: onnx, FEATURES_FILE: (json.dumps(schema, indent=2) + "\n").encode(),
                                   MANIFEST_FILE: manifest.model_dump_json(indent=2).encode(),
                                   CARD_FILE: _card(manifest).encode()})
    try:
        registry.promote(Promotion(version=version, promoted_at=now, reason=verdict.reason,
                                   previous=pointer.version if pointer else None),
                         expected_etag=pointer.etag if pointer else None)
    except PromotionConflict as exc:
        return _record(registry, TrainerRun(**trained, reason=f"not promoted, although better: {exc}"))
    return _record(registry, TrainerRun(**{**trained, "promoted": True}, reason=verdict.reason))


def _describe(cfg: Any) -> str:
    from .train import describe

    return describe(cfg)


# ---------------------------------------------------------------------------------------------- the trainer app
MIN_ROLLOUTS_SETTING = "SHADOW_ROLLOUT_MIN_ROLLOUTS"
PACKAGED_ROWS_SETTING = "SHADOW_ROLLOUT_TRAINER_PACKAGED_ROWS"
PACKAGED_ROWS_FILE = "training-rows.npz"
"""Written by ``shadow-rollout train`` (the rows it fitted on); ``shared.learning.train`` names it too."""


VALIDATION_ROWS_SETTING = "SHADOW_ROLLOUT_TRAINER_VALIDATION_ROWS"
VALIDATION_ROWS_FILE = "validation-rows.npz"


def save_rows(rows: PackagedRows, path: Path) -> None:
    np.savez_compressed(path, X=rows.X, y=rows.y, judge=rows.judge, hashes=json.dumps(rows.scenario_hashes))


def load_rows(path: Path) -> PackagedRows:
    with np.load(path) as f:
        return PackagedRows(f["X"].astype(np.float32), f["y"].astype(np.int8), f["judge"].astype(np.float64),
                            json.loads(str(f["hashes"])))


def _rows_from(setting: str, default: Path) -> PackagedRows | None:
    import os

    path = Path(os.environ.get(setting) or default)
    if not path.is_file():
        log.warning("trainer: no rows at %s (%s)", path, setting)
        return None
    return load_rows(path)


def run_from_environment(now: datetime, cfg: TrainerConfig | None = None) -> TrainerRun:
    """One run as the trainer app makes it: the rollout store and the registry named by the app settings, the
    packaged training and validation rows (``model/*.npz``, staged into the trainer's package by stage.sh).
    ``cfg``: the learner's settings (the minimum of rollouts comes from the app setting all the same).

    The store is read only (the trainer's identity holds Table data *reader*); the registry container exists
    already (infra makes it; the identity may write blobs in it, not create containers).
    """
    import os

    from ..adapters.azure.store import TableRolloutStore
    from ..bootstrap import _table_client, model_registry
    from ..domain.errors import ConfigurationError

    url = os.environ.get("SHADOW_ROLLOUT_REGISTRY_URL")
    if not url:
        raise ConfigurationError("the trainer needs SHADOW_ROLLOUT_REGISTRY_URL (the model registry's container)")
    client = _table_client(os.environ.get("SHADOW_ROLLOUT_TABLE", "rollouts"))
    if client is None:
        raise ConfigurationError("the trainer needs SHADOW_ROLLOUT_TABLES_ENDPOINT (the rollout store)")
    raw = os.environ.get(MIN_ROLLOUTS_SETTING)
    try:
        min_rollouts = int(raw) if raw else MIN_ROLLOUTS
    except ValueError as exc:
        raise ConfigurationError(f"{MIN_ROLLOUTS_SETTING}={raw!r} is not a whole number") from exc
    return retrain_into_registry([TableRolloutStore(client)], model_registry(url), now=now,
                                 packaged=_rows_from(PACKAGED_ROWS_SETTING, MODEL_DIR / PACKAGED_ROWS_FILE),
                                 validation=_rows_from(VALIDATION_ROWS_SETTING, MODEL_DIR / VALIDATION_ROWS_FILE),
                                 cfg=replace(cfg or TrainerConfig(), min_rollouts=min_rollouts))
