"""The ModelRegistry port on a local directory: the simulator's registry, with Blob storage's rules.

Same layout as the Blob container (``versions/<version>/<file>``, ``promoted.json``, ``runs/<name>``). The
pointer's ETag is a hash of its bytes and ``promote`` compares and swaps under an exclusive ``flock``, so
trainers in separate processes race as they would on Blob storage: at most one wins.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from ..domain.errors import Conflict, NotFound, PromotionConflict
from ..domain.registry import PromotedPointer, Promotion, check_version
from ..ports import ModelRegistry

POINTER = "promoted.json"


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _write_atomically(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(body)
    os.replace(tmp, path)


class FileModelRegistry(ModelRegistry):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = root.resolve().as_uri()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def put_version(self, version: str, files: Mapping[str, bytes]) -> None:
        check_version(version)
        with self._locked():
            for name, body in files.items():
                path = self.root / "versions" / version / name
                if path.exists():
                    if path.read_bytes() != body:
                        raise Conflict(f"version {version} already has a different {name}; versions are immutable",
                                       operation="put_version", resource=version, status=409)
                    continue
                _write_atomically(path, body)

    def get_file(self, version: str, name: str) -> bytes:
        path = self.root / "versions" / check_version(version) / check_version(name)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"{name} of model version {version} is not in {self.location}",
                           operation="get_file", resource=f"{version}/{name}", status=404) from exc

    def versions(self) -> list[str]:
        base = self.root / "versions"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def promoted(self) -> PromotedPointer | None:
        try:
            body = (self.root / POINTER).read_bytes()
        except FileNotFoundError:
            return None
        return PromotedPointer(promotion=Promotion.model_validate_json(body), etag=_etag(body))

    def promote(self, promotion: Promotion, *, expected_etag: str | None) -> PromotedPointer:
        body = promotion.model_dump_json(indent=2).encode()
        with self._locked():
            current = self.promoted()
            if (current.etag if current else None) != expected_etag:
                raise PromotionConflict(
                    f"the promoted pointer moved to {current.version if current else 'nothing'} since it was read; "
                    f"{promotion.version} not promoted")
            _write_atomically(self.root / POINTER, body)
        return PromotedPointer(promotion=promotion, etag=_etag(body))

    def put_run(self, name: str, report: bytes) -> None:
        _write_atomically(self.root / "runs" / name, report)
