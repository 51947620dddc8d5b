"""What the model registry holds: versions with their manifest and card, and the ``promoted`` pointer.

A version is immutable once written (its id ends with a hash of its ONNX file); the pointer names the version
the rollout app scores with. Which model a rollout used is recorded in its decisions (:class:`ModelInUse`).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .errors import ModelError

MODEL_FILE = "failure_model.onnx"
FEATURES_FILE = "features.json"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "README.md"
VERSION_FILES = (MODEL_FILE, FEATURES_FILE, MANIFEST_FILE, CARD_FILE)
PACKAGED_PREFIX = "packaged-"


_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_version(version: str) -> str:
    """A version id is a name, never a path: it becomes a blob prefix and a cache directory."""
    if not _VERSION.fullmatch(version):
        raise ModelError(f"model version {version!r} is not a valid id (letters, digits, '.', '_', '-')")
    return version


def content_hash(onnx: bytes) -> str:
    return hashlib.sha256(onnx).hexdigest()[:12]


def packaged_version(onnx: bytes) -> str:
    """The id of the model shipped in the app package: the registry's first version and its fallback."""
    return PACKAGED_PREFIX + content_hash(onnx)


def trained_version(onnx: bytes, at: datetime) -> str:
    """A trained version's id: sortable by time, unique by content."""
    t = at.astimezone(UTC)
    return f"{t.year:04d}{t.month:02d}{t.day:02d}T{t.hour:02d}{t.minute:02d}{t.second:02d}Z-{content_hash(onnx)}"


class ModelSource(StrEnum):
    REGISTRY = "registry"
    """The promoted version of the model registry."""
    PACKAGED = "packaged"
    """The model shipped in the app package (``model/``)."""
    JUDGE = "judge"
    """No model: the statistical judge scores every VM."""


class ModelInUse(BaseModel):
    """Which model scores, where it came from and, when it is a fallback, why."""

    model_config = ConfigDict(frozen=True)

    version: str
    source: ModelSource
    fallback_reason: str = ""

    @property
    def is_fallback(self) -> bool:
        return bool(self.fallback_reason)


class TrainingData(BaseModel):
    """What a version was trained on; the card reports these."""

    model_config = ConfigDict(frozen=True)

    packaged_rows: int = 0
    recorded_rollouts: int = 0
    recorded_rows: int = 0
    """Labelled rows from recorded rollouts used for fitting (changed VMs only)."""
    positives: int = 0
    """Failures among all fitted rows."""
    fleet_rows: int = 0
    """Every VM row of the recorded rollouts, labelled or not."""
    labelled_share: float = 0.0
    """Share of those rows that production could label (the VMs that were changed)."""
    held_out_rollouts: int = 0
    held_out_rows: int = 0


class Validation(BaseModel):
    """The candidate and what is in use, scored on the same held-out rows."""

    model_config = ConfigDict(frozen=True)

    rows: int
    """Held-out recorded rows plus ``simulated_rows``."""
    simulated_rows: int = 0
    """Rows of the simulator's validation families (scenario families never trained on)."""
    positives: int
    candidate: dict[str, Any]
    current: dict[str, Any]
    current_version: str
    promote: bool
    reason: str


class ModelManifest(BaseModel):
    """Everything needed to say where a version came from and how good it was on data it never saw."""

    model_config = ConfigDict(frozen=True)

    version: str
    created_at: datetime
    feature_version: str
    features: list[str]
    seed: int
    estimator: str
    data: TrainingData
    scenario_hashes: dict[str, str] = Field(default_factory=dict)
    """sha256 of each scenario file behind the packaged training rows (name -> hash)."""
    validation: Validation | None = None
    parent: str | None = None
    """The version in use when this one was trained (the one it had to beat)."""


class Promotion(BaseModel):
    """The ``promoted`` pointer's body."""

    model_config = ConfigDict(frozen=True)

    version: str
    promoted_at: datetime
    reason: str
    previous: str | None = None
    by: str | None = None
    """Who moved the pointer by hand (a rollback); None for the trainer."""
    rollback: bool = False
    """True when the pointer was moved back to an earlier version by ``shadow-rollout model rollback``."""


class PromotedPointer(BaseModel):
    """The pointer as read, with the ETag a conditional promote must match."""

    model_config = ConfigDict(frozen=True)

    promotion: Promotion
    etag: str

    @property
    def version(self) -> str:
        return self.promotion.version
