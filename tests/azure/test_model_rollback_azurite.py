"""`shadow-rollout model rollback` on a real Blob service (Azurite): the pointer moves back with the same ETag
compare-and-swap as a promotion, only to a version the registry holds with the schema this code computes, and
the move is recorded with who and why."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from shared.adapters.azure.blob_registry import BlobModelRegistry
from shared.domain.errors import PromotionConflict
from shared.domain.registry import Promotion
from shared.learning.rollback import rollback
from tests.azure.test_model_registry_azurite import NOW, model_dir, publish
from tests.e2e.test_cli import cli


@pytest.fixture
def container(azurite_blobs: str) -> Iterator[ContainerClient]:
    client = ContainerClient.from_connection_string(azurite_blobs, f"models{uuid.uuid4().hex[:12]}")
    yield client
    client.delete_container()


@pytest.fixture
def registry(container: ContainerClient, tmp_path: Path) -> BlobModelRegistry:
    """v1 promoted first, then v2 (the one to roll back from); and a version built on an older feature schema."""
    reg = BlobModelRegistry(container, create=True)
    first = publish(reg, "v1", model_dir(tmp_path / "v1", wrong=False))
    publish(reg, "v2", model_dir(tmp_path / "v2", wrong=True), expected=first.etag)
    reg.put_version("old-schema", {"failure_model.onnx": (tmp_path / "v1" / "failure_model.onnx").read_bytes(),
                                   "features.json": json.dumps({"version": "0", "features": ["x"]}).encode()})
    return reg


def run(registry: BlobModelRegistry, blobs: str, *args: str, command: str = "rollback") -> tuple[int, str]:
    url = f"http://127.0.0.1/devstoreaccount1/{registry.location.rsplit('/', 1)[-1]}"
    p = cli("model", command, "--registry", url, *args, env={"SHADOW_ROLLOUT_REGISTRY_CONNECTION_STRING": blobs})
    return p.returncode, " ".join((p.stdout + p.stderr).split())


def test_a_rollback_moves_the_pointer_back_and_records_who_and_why(registry: BlobModelRegistry,
                                                                   container: ContainerClient,
                                                                   azurite_blobs: str) -> None:
    code, text = run(registry, azurite_blobs, command="versions")
    assert code == 0 and "old-schema v1 * v2 promoted: v2" in text, text
    code, text = run(registry, azurite_blobs, "--to", "v1", "--reason", "v2 halts good changes", "--by", "alice")
    assert code == 0, text
    assert "rolled back: v2 -> v1" in text
    pointer = registry.promoted()
    assert pointer is not None and pointer.version == "v1"
    p = pointer.promotion
    assert p.rollback and p.by == "alice" and p.previous == "v2"
    assert p.reason == "rollback by alice: v2 halts good changes"
    [report] = [json.loads(container.download_blob(b.name).readall())
                for b in container.list_blobs(name_starts_with="runs/")]
    assert report == {**report, "rollback": True, "by": "alice", "from": "v2", "to": "v1",
                      "reason": "v2 halts good changes"}


@pytest.mark.parametrize(("to", "message"), [
    ("v9", "model version 'v9' is not in the registry"),
    ("old-schema", "feature schema mismatch"),
    ("v2", "model version v2 is already the promoted one"),
    ("../v1", "model version '../v1' is not a valid id"),
])
def test_a_rollback_to_an_unknown_or_unusable_version_is_refused_and_moves_nothing(
        registry: BlobModelRegistry, azurite_blobs: str, to: str, message: str) -> None:
    before = registry.promoted()
    code, text = run(registry, azurite_blobs, "--to", to, "--reason", "try")
    assert code == 2 and f"error: {message}" in text, text
    after = registry.promoted()
    assert before is not None and after is not None and after.etag == before.etag and after.version == "v2"


class PromotedMeanwhile(BlobModelRegistry):
    """A trainer promotes v3 between the rollback's read of the pointer and its conditional write."""

    def versions(self) -> list[str]:
        pointer = super().promoted()
        assert pointer is not None
        super().promote(Promotion(version="v3", promoted_at=NOW, reason="trainer"), expected_etag=pointer.etag)
        return super().versions()


def test_a_rollback_racing_a_promotion_loses_with_a_conflict(registry: BlobModelRegistry,
                                                             container: ContainerClient) -> None:
    racing = PromotedMeanwhile(container)
    with pytest.raises(PromotionConflict, match="moved since it was read"):
        rollback(racing, "v1", by="bob", reason="bad model", now=NOW + timedelta(minutes=1))
    pointer = registry.promoted()
    assert pointer is not None and pointer.version == "v3"  # the trainer's promotion stands
