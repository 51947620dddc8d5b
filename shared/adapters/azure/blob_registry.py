"""The ModelRegistry port over Azure Blob storage (azure-storage-blob): one container in the app's account.

Layout: ``versions/<version>/<file>`` (immutable), ``promoted.json`` (the pointer), ``runs/<name>`` (trainer
reports). Both rules are conditional writes, checked by the service itself
(https://learn.microsoft.com/rest/api/storageservices/specifying-conditional-headers-for-blob-service-operations):

* a version's files are written with ``If-None-Match: *`` (``upload_blob(overwrite=False)``), so a rerun of the
  same trainer finds them and two trainers can never overwrite each other's bytes;
* the pointer is moved with ``If-Match: <ETag read>`` (``etag=..., match_condition=MatchConditions.IfNotModified``),
  or ``If-None-Match: *`` for the first promotion; the loser of a race gets 412 (or 409 for the first) and
  promotes nothing.

azure-storage-blob sets ``If-None-Match: *`` itself when ``overwrite=False`` and no other condition is given,
and reports the failed condition as ``ResourceExistsError`` (``_upload_helpers.upload_block_blob``, 12.x); with
``match_condition=MatchConditions.IfNotModified`` a mismatch is ``ResourceModifiedError`` (412).

Identity in Azure (``DefaultAzureCredential``; the trainer holds Storage Blob Data Contributor on the container,
the rollout app Storage Blob Data Reader); a connection string locally (Azurite).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from urllib.parse import urlparse

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from azure.storage.blob import ContainerClient

from ...domain.errors import ConfigurationError, Conflict, NotFound, PromotionConflict
from ...domain.registry import PromotedPointer, Promotion, check_version
from ...ports import ModelRegistry
from .errors import azure_errors

POINTER = "promoted.json"
CONNECTION_STRING_SETTING = "SHADOW_ROLLOUT_REGISTRY_CONNECTION_STRING"


class BlobModelRegistry(ModelRegistry):
    """``create=True`` makes the container on first write (nothing reaches Azure before that)."""

    def __init__(self, container: ContainerClient, *, create: bool = False) -> None:
        self._container = container
        self._create = create
        self.location = container.url

    @classmethod
    def from_url(cls, url: str, *, connection_string: str | None = None, create: bool = False) -> BlobModelRegistry:
        """A container URL (``https://<account>.blob.core.windows.net/<container>``) with the app's identity;
        with a connection string (Azurite), only the URL's last path segment is used, as the container name."""
        conn = connection_string if connection_string is not None else os.environ.get(CONNECTION_STRING_SETTING)
        if conn:
            name = urlparse(url).path.rstrip("/").rsplit("/", 1)[-1] if "://" in url else url
            if not name:
                raise ConfigurationError(f"the registry URL {url!r} names no container")
            return cls(ContainerClient.from_connection_string(conn, name), create=create)
        parsed = urlparse(url)
        if parsed.scheme != "https" or not parsed.path.strip("/"):
            raise ConfigurationError(f"the registry URL {url!r} must be https://<account>.blob.core.windows.net/"
                                     f"<container> (or set {CONNECTION_STRING_SETTING} for a local emulator)")
        from azure.identity import DefaultAzureCredential

        return cls(ContainerClient.from_container_url(url, credential=DefaultAzureCredential()), create=create)

    @property
    def container(self) -> ContainerClient:
        if self._create:
            with azure_errors("create_container", self.location), contextlib.suppress(ResourceExistsError):
                self._container.create_container()
            self._create = False
        return self._container

    def put_version(self, version: str, files: Mapping[str, bytes]) -> None:
        check_version(version)
        for name, body in files.items():
            blob = f"versions/{version}/{name}"
            try:
                with azure_errors("put_version", blob):
                    self.container.upload_blob(blob, body, overwrite=False)  # If-None-Match: *
            except Conflict:
                if self.get_file(version, name) != body:
                    raise Conflict(f"version {version} already has a different {name}; versions are immutable",
                                   operation="put_version", resource=blob, status=409) from None

    def get_file(self, version: str, name: str) -> bytes:
        blob = f"versions/{version}/{name}"
        try:
            with azure_errors("get_file", blob):
                return self._container.download_blob(blob).readall()
        except NotFound as exc:
            raise NotFound(f"{name} of model version {version} is not in {self.location}",
                           operation="get_file", resource=blob, status=404) from exc

    def versions(self) -> list[str]:
        with azure_errors("list_versions", self.location):
            names = {b.name.split("/")[1] for b in self._container.list_blobs(name_starts_with="versions/")}
        return sorted(names)

    def promoted(self) -> PromotedPointer | None:
        try:
            with azure_errors("read_pointer", POINTER):
                download = self._container.download_blob(POINTER)
                body = download.readall()
                etag = download.properties.etag
        except NotFound:
            return None
        return PromotedPointer(promotion=Promotion.model_validate_json(body), etag=etag)

    def promote(self, promotion: Promotion, *, expected_etag: str | None) -> PromotedPointer:
        body = promotion.model_dump_json(indent=2).encode()
        blob = self.container.get_blob_client(POINTER)
        with azure_errors("promote", POINTER):
            try:
                if expected_etag is None:
                    result = blob.upload_blob(body, overwrite=False)  # If-None-Match: *
                else:
                    result = blob.upload_blob(body, overwrite=True, etag=expected_etag,
                                              match_condition=MatchConditions.IfNotModified)  # If-Match
            except ResourceExistsError as exc:  # 409 BlobAlreadyExists: a first promotion happened meanwhile
                raise PromotionConflict(f"another trainer promoted first; {promotion.version} not promoted: "
                                        f"{exc.reason}") from exc
            except ResourceModifiedError as exc:  # 412 ConditionNotMet: the pointer moved since it was read
                raise PromotionConflict(f"the promoted pointer moved since it was read; {promotion.version} not "
                                        f"promoted: {exc.reason}") from exc
        return PromotedPointer(promotion=promotion, etag=str(result["etag"]))

    def put_run(self, name: str, report: bytes) -> None:
        with azure_errors("put_run", name):
            self.container.upload_blob(f"runs/{name}", report, overwrite=True)

