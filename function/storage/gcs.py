"""The store in Cloud Storage: one gzip object, and its records under a prefix beside it."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import requests
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.cloud import storage
from google.cloud.storage import exceptions as storage_exceptions
from google.cloud.storage.retry import DEFAULT_RETRY, _should_retry

from function.storage.base import Confirmation, Stored, compress, decompress
from function.storage.errors import GenerationMismatch, StoreDenied, StoreError, StoreMissing

DEFAULT_TIMEOUT = 60.0
"""Seconds one HTTP request to Cloud Storage may take (connect, then each read)."""
DEFAULT_RETRY_TIMEOUT = 120.0
"""Seconds one store operation may spend retrying transient Cloud Storage faults before it gives up."""

_READ_ATTEMPTS = 3

ClientFactory = Callable[[], Any]


def default_client() -> Any:
    """A storage client: anonymous against ``STORAGE_EMULATOR_HOST`` when set, else default credentials."""
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        # Other Google tools accept host:port without a scheme; the Python library needs one. With the
        # variable set, the library itself picks anonymous credentials.
        endpoint = emulator if "://" in emulator else f"http://{emulator}"
        return storage.Client(project=None, client_options={"api_endpoint": endpoint})
    # Object reads and writes need no project; asking for none avoids failing where none is configured.
    return storage.Client(project=None)


class GcsStore:
    """The index as one gzip object in a bucket.

    The object holds plain gzip bytes with content type ``application/gzip`` and no Content-Encoding, so
    Cloud Storage never transcodes it and the checksums cover exactly the stored bytes.

    A read is one download: its generation comes from that response's ``x-goog-generation`` header, and
    the library pins it (``generation=``) should it have to resume the transfer, so bytes and generation
    always belong together with no separate metadata call. fake-gcs-server ignores that pin, like every
    download precondition; real Cloud Storage honours them.

    Uploads of up to 8 MiB (compressed) are single requests. Larger ones go as the library's resumable
    upload, whose ``ifGenerationMatch`` real Cloud Storage enforces too and which only becomes visible
    when it completes; fake-gcs-server ignores preconditions on resumable uploads, so tests of races
    must stay below 8 MiB.
    """

    def __init__(
        self,
        bucket: str,
        name: str,
        *,
        client_factory: ClientFactory | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry_timeout: float = DEFAULT_RETRY_TIMEOUT,
    ) -> None:
        self.bucket_name = bucket
        self.name = name
        self.uri = f"gs://{bucket}/{name}"
        self._client_factory = client_factory or default_client
        self._timeout = timeout
        self._retry_timeout = retry_timeout
        self._client: Any = None
        self._client_lock = threading.Lock()

    def read(self) -> Stored | None:
        """The object, or None when it is absent; ``StoreMissing`` when the bucket is."""
        for _ in range(_READ_ATTEMPTS):
            blob = self._bucket().blob(self.name)
            try:
                with self._faults("download"):
                    # One request: the library takes the generation from this response's headers and
                    # pins it when it resumes an interrupted transfer, so data and generation match.
                    raw = blob.download_as_bytes(raw_download=True, timeout=self._timeout, retry=self._read_retry())
            except api_exceptions.NotFound:
                # A resumed transfer pinned to a generation that was replaced in the meantime also
                # ends here; only the metadata says whether the object is really gone.
                if self.generation() is None:
                    return None
                continue
            if blob.generation is None:
                raise StoreError(
                    f"{self.uri}: the download carried no x-goog-generation header; "
                    "check STORAGE_EMULATOR_HOST or any proxy in between"
                )
            return Stored(decompress(raw, self.uri), int(blob.generation))
        raise StoreError(f"{self.uri} changed during {_READ_ATTEMPTS} downloads in a row; try again")

    def generation(self) -> int | None:
        with self._faults("metadata lookup"):
            blob = self._bucket().get_blob(self.name, timeout=self._timeout, retry=self._read_retry())
        if blob is None:
            self._require_bucket()
            return None
        return int(blob.generation)

    def _require_bucket(self) -> None:
        """Tell a missing bucket from a missing object, which both answer 404.

        Listing needs only ``storage.objects.list``, which every role that reads objects has, unlike a
        bucket lookup; it costs one request, made only while the object is absent."""
        try:
            with self._faults("bucket lookup"):
                blobs = self._bucket().list_blobs(
                    max_results=1, prefix=self.name, timeout=self._timeout, retry=self._read_retry()
                )
                next(iter(blobs), None)
        except api_exceptions.NotFound:
            raise StoreMissing(self._no_bucket()) from None

    def _no_bucket(self) -> str:
        return (
            f"{self.uri}: bucket {self.bucket_name!r} does not exist; fix the bucket in the index URI, "
            "or create the bucket (terraform/ does)"
        )

    def write(self, data: bytes, *, if_generation: int | None) -> int:
        payload = compress(data)
        blob = self._bucket().blob(self.name)
        # Filled by the retry on every transient fault, so a 412 after one can be checked for being
        # our own earlier attempt that landed although its answer was lost. api_core offers no public
        # way to hook DEFAULT_RETRY, hence the library's own predicate rebuilt into a Retry here.
        retried: list[Exception] = []
        try:
            with self._faults("upload"):
                blob.upload_from_string(
                    payload,
                    content_type="application/gzip",
                    if_generation_match=if_generation or 0,
                    timeout=self._timeout,
                    retry=Retry(predicate=_should_retry, timeout=self._retry_timeout, on_error=retried.append),
                )
        except api_exceptions.PreconditionFailed:
            current = self._landed(payload) if retried else None
            if current is not None:
                return current
            expected = "absent" if not if_generation else f"at generation {if_generation}"
            raise GenerationMismatch(
                f"{self.uri} is no longer {expected}: another writer published first; re-read and retry"
            ) from None
        except api_exceptions.NotFound as error:
            raise StoreMissing(self._no_bucket()) from error
        return int(blob.generation)

    def _landed(self, payload: bytes) -> int | None:
        """The object's generation if it holds ``payload``: after a retry, a 412 may be our own first try."""
        with self._faults("metadata lookup"):
            blob = self._bucket().get_blob(self.name, timeout=self._timeout, retry=self._read_retry())
        md5 = base64.b64encode(hashlib.md5(payload, usedforsecurity=False).digest()).decode()
        if blob is None or blob.md5_hash != md5:
            return None
        return int(blob.generation)

    def confirm(self, confirmation: Confirmation) -> None:
        """Patch the object's custom metadata: only its metageneration changes.

        ``ifGenerationMatch`` keeps a confirmation off a generation that replaced the confirmed one. No
        metageneration precondition: the patch sets fixed values, so retrying it is safe (the library
        retries a patch only under one), and of two confirmations the later one should stand anyway."""
        blob = self._bucket().blob(self.name)
        blob.metadata = confirmation.fields()
        try:
            with self._faults("metadata patch"):
                blob.patch(
                    if_generation_match=confirmation.generation,
                    timeout=self._timeout,
                    retry=self._read_retry(),
                )
        except (api_exceptions.PreconditionFailed, api_exceptions.NotFound):
            raise GenerationMismatch(
                f"{self.uri} is no longer at generation {confirmation.generation}: a newer index was published "
                "(or it was deleted) meanwhile; nothing to confirm"
            ) from None

    def confirmation(self) -> Confirmation | None:
        with self._faults("metadata lookup"):
            blob = self._bucket().get_blob(self.name, timeout=self._timeout, retry=self._read_retry())
        if blob is None:
            return None
        return Confirmation.of(blob.metadata, int(blob.generation))

    def records(self, folder: str) -> GcsRecords:
        return GcsRecords(self, f"{self.name}.{folder}/")

    def _read_retry(self) -> Any:
        return DEFAULT_RETRY.with_timeout(self._retry_timeout)

    def _bucket(self) -> Any:
        with self._client_lock:
            if self._client is None:
                with self._faults("client set-up"):
                    self._client = self._client_factory()
            return self._client.bucket(self.bucket_name)

    @contextlib.contextmanager
    def _faults(self, what: str) -> Iterator[None]:
        """Turn library faults into StoreError; NotFound and PreconditionFailed pass for the caller."""
        try:
            yield
        except (api_exceptions.NotFound, api_exceptions.PreconditionFailed):
            raise
        except (api_exceptions.Forbidden, api_exceptions.Unauthorized) as error:
            raise StoreDenied(
                f"{self.uri}: {what} refused ({error}); grant the service account object read/write "
                f"on bucket {self.bucket_name!r}"
            ) from error
        except auth_exceptions.DefaultCredentialsError as error:
            raise StoreDenied(
                f"{self.uri}: {what} failed, no Google credentials ({error}); run on Google Cloud, run "
                "`gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, or set "
                "STORAGE_EMULATOR_HOST for an emulator"
            ) from error
        except (
            api_exceptions.GoogleAPIError,
            auth_exceptions.GoogleAuthError,
            requests.RequestException,
            storage_exceptions.InvalidResponse,
            storage_exceptions.DataCorruption,
            OSError,
        ) as error:
            raise StoreError(
                f"{self.uri}: {what} failed ({type(error).__name__}: {error}); "
                "Cloud Storage is unreachable or failing, try again later"
            ) from error


class GcsRecords:
    """Objects under ``<index object>.<folder>/`` in the index's bucket, created with ``ifGenerationMatch=0``
    so that concurrent writers of one name cannot overwrite each other."""

    def __init__(self, store: GcsStore, prefix: str) -> None:
        self._store = store
        self.prefix = prefix
        self.uri = f"gs://{store.bucket_name}/{prefix}"

    def create(self, name: str, data: bytes) -> bool:
        store = self._store
        blob = store._bucket().blob(self.prefix + name)
        try:
            with store._faults("record upload"):
                # A retried upload whose first try landed meets its own object: "exists" is then right too.
                blob.upload_from_string(
                    data,
                    content_type="application/json",
                    if_generation_match=0,
                    timeout=store._timeout,
                    retry=DEFAULT_RETRY.with_timeout(store._retry_timeout),
                )
        except api_exceptions.PreconditionFailed:
            return False
        except api_exceptions.NotFound as error:
            raise StoreMissing(store._no_bucket()) from error
        return True

    def read_all(self) -> dict[str, bytes]:
        store = self._store
        found: dict[str, bytes] = {}
        try:
            with store._faults("record listing"):
                blobs = list(
                    store._bucket().list_blobs(prefix=self.prefix, timeout=store._timeout, retry=store._read_retry())
                )
            for blob in blobs:
                with contextlib.suppress(api_exceptions.NotFound), store._faults("record download"):
                    found[blob.name[len(self.prefix) :]] = blob.download_as_bytes(
                        timeout=store._timeout, retry=store._read_retry()
                    )
        except api_exceptions.NotFound:
            return {}  # no bucket: nothing recorded
        return found

    def delete(self, name: str) -> None:
        store = self._store
        with contextlib.suppress(api_exceptions.NotFound), store._faults("record deletion"):
            store._bucket().blob(self.prefix + name).delete(timeout=store._timeout, retry=store._read_retry())
