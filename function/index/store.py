"""Where the digest index is kept: one object in Cloud Storage or one local file, behind ``IndexStore``.

Every write is conditional on the generation the writer last read, so two syncs that race cannot lose
each other's work: the second one gets ``GenerationMismatch``, re-reads and tries again. Beside the index,
in the same bucket or folder, ``Records`` keeps small documents that are created once (the pending commits).
A ``Confirmation`` says that a sync found the stored generation current without writing a new one.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import gzip
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
import requests
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.cloud import storage
from google.cloud.storage import exceptions as storage_exceptions
from google.cloud.storage.retry import DEFAULT_RETRY, _should_retry

GZIP_MAGIC = b"\x1f\x8b"
# gzip writes the current time into its header; a fixed one makes equal indexes equal bytes, which is
# what lets a write whose reply was lost recognise itself afterwards.
_GZIP_MTIME = 0
_GZIP_LEVEL = 6

DEFAULT_TIMEOUT = 60.0
"""Seconds one HTTP request to Cloud Storage may take (connect, then each read)."""
DEFAULT_RETRY_TIMEOUT = 120.0
"""Seconds one store operation may spend retrying transient Cloud Storage faults before it gives up."""

_READ_ATTEMPTS = 3

log = logging.getLogger(__name__)

ClientFactory = Callable[[], Any]


@dataclass(frozen=True)
class Stored:
    data: bytes
    """The index JSON, already decompressed."""
    generation: int
    """Opaque version of exactly these bytes; only compare it with ``==``."""


@dataclass(frozen=True)
class Confirmation:
    """A sync rebuilt ``commit`` at ``confirmed_at`` and found exactly what ``generation`` holds, so the
    index was current then although nothing was written (``stats --max-age`` counts from it)."""

    generation: int
    confirmed_at: str
    """ISO 8601, UTC, like the index's ``built_at``."""
    commit: str | None

    def fields(self) -> dict[str, str]:
        """As object metadata (all text); the generation is kept too, so a confirmation that reached a
        newer generation anyway (an emulator that ignores the precondition) is recognised as not its own."""
        return {
            "confirmed_generation": str(self.generation),
            "confirmed_at": self.confirmed_at,
            "confirmed_commit": self.commit or "",
        }

    @classmethod
    def of(cls, fields: Mapping[str, Any] | None, generation: int | None) -> Confirmation | None:
        """The confirmation in ``fields`` if it is one of ``generation``; None when absent, damaged or older."""
        if not fields or generation is None:
            return None
        at, commit = fields.get("confirmed_at"), fields.get("confirmed_commit")
        if not isinstance(at, str) or not isinstance(commit, str | None):
            return None
        try:
            confirmed = int(fields["confirmed_generation"])
            dt.datetime.fromisoformat(at)
        except (KeyError, TypeError, ValueError):
            return None
        return cls(confirmed, at, commit or None) if confirmed == generation else None


class StoreError(Exception):
    """The store could not be read or written; the decision stays open and the caller retries later."""


class StoreMissing(StoreError):
    """The bucket or local folder the URI names does not exist: no retry cures that, the URI or the set-up
    must be fixed. A ``StoreError`` still, so a function that cannot read its index leaves events open."""


class StoreDenied(StoreError):
    """Cloud Storage refused the caller, or no credentials were found: the credentials or the IAM grants
    must be fixed. A ``StoreError`` still, for the same reason as ``StoreMissing``."""


class GenerationMismatch(StoreError):
    """The write's precondition failed: someone else wrote first. Re-read, merge, write again."""


class CorruptIndex(StoreError):
    """The stored bytes cannot be decoded: reading them again cannot help, only a new publication."""


class IndexStore(Protocol):
    uri: str

    def read(self) -> Stored | None:
        """The stored index, or None when nothing has been stored yet."""
        ...

    def generation(self, *, timeout: float | None = None) -> int | None:
        """The current generation from metadata alone (no download), or None when absent; ``timeout``
        (seconds) bounds the lookup and its retries below the store's own bounds (a decision's deadline)."""
        ...

    def write(self, data: bytes, *, if_generation: int | None) -> int:
        """Store ``data`` if the object is still at ``if_generation`` (None: does not exist yet).

        Returns the new generation; raises ``GenerationMismatch`` when the precondition fails.
        """
        ...

    def confirm(self, confirmation: Confirmation) -> None:
        """Record ``confirmation`` on its generation without writing a new one (readers key on the generation).

        Raises ``GenerationMismatch`` when the index is no longer at that generation."""
        ...

    def confirmation(self) -> Confirmation | None:
        """The last confirmation of the current generation, or None (none recorded, or of an older one)."""
        ...

    def records(self, folder: str) -> Records:
        """Small documents kept beside the index (same bucket or directory, same permissions)."""
        ...


class Records(Protocol):
    """A folder of small named documents next to the index, each created once and never rewritten."""

    uri: str

    def create(self, name: str, data: bytes) -> bool:
        """Store ``data`` under ``name`` unless that name exists; returns whether it was created."""
        ...

    def read_all(self, *, timeout: float | None = None) -> dict[str, bytes]:
        """Every document by name (none when the folder does not exist); ``timeout`` (seconds) bounds the
        whole read below the store's own bounds (a decision's deadline)."""
        ...

    def delete(self, name: str) -> None:
        """Remove ``name``; a name that is already gone is not an error."""
        ...


def open_store(
    uri: str,
    *,
    client_factory: ClientFactory | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retry_timeout: float = DEFAULT_RETRY_TIMEOUT,
) -> IndexStore:
    """The store for ``gs://bucket/object`` or a local path.

    ``client_factory``, ``timeout`` and ``retry_timeout`` apply to Cloud Storage only.
    """
    if not uri or not uri.strip():
        raise ValueError("index URI is empty: give gs://bucket/object or a local path")
    if uri[:3].lower() == "gs:":
        bucket, name = parse_gs_uri(uri)
        return GcsStore(bucket, name, client_factory=client_factory, timeout=timeout, retry_timeout=retry_timeout)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", uri):
        raise ValueError(f"index URI {uri!r}: unsupported scheme; give gs://bucket/object or a local path")
    return LocalStore(Path(uri))


# Bucket naming rules: https://cloud.google.com/storage/docs/buckets#naming
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


def parse_gs_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/object`` as (bucket, object); ValueError for anything looser."""
    if not uri.startswith("gs://"):
        raise ValueError(f"index URI {uri!r}: Cloud Storage URIs are written gs://bucket/object")
    bucket, slash, name = uri[len("gs://") :].partition("/")
    if not bucket or not slash or not name:
        raise ValueError(f"index URI {uri!r}: needs both a bucket and an object name, as in gs://bucket/object")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValueError(
            f"index URI {uri!r}: {bucket!r} is not a valid bucket name "
            "(3-222 characters: lowercase letters, digits, '-', '_' and '.', starting and ending alphanumeric)"
        )
    if name.startswith("/") or name.endswith("/"):
        raise ValueError(f"index URI {uri!r}: the object name must not start or end with '/'")
    if "\n" in name or "\r" in name or len(name.encode()) > 1024:
        raise ValueError(f"index URI {uri!r}: the object name must be at most 1024 bytes without line breaks")
    return bucket, name


def _decompress(raw: bytes, uri: str) -> bytes:
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise CorruptIndex(
            f"{uri}: the stored index is not valid gzip ({error}); rebuild it with build-index or sync_index"
        ) from error


def _compress(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=_GZIP_MTIME)


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
            return Stored(_decompress(raw, self.uri), int(blob.generation))
        raise StoreError(f"{self.uri} changed during {_READ_ATTEMPTS} downloads in a row; try again")

    def generation(self, *, timeout: float | None = None) -> int | None:
        with self._faults("metadata lookup"):
            blob = self._bucket().get_blob(self.name, timeout=self._clip(timeout), retry=self._read_retry(timeout))
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
        payload = _compress(data)
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

    def _read_retry(self, timeout: float | None = None) -> Any:
        return DEFAULT_RETRY.with_timeout(self._retry_timeout if timeout is None else min(self._retry_timeout, timeout))

    def _clip(self, timeout: float | None) -> float:
        """The request timeout, clipped to ``timeout`` where one is given."""
        return self._timeout if timeout is None else min(self._timeout, timeout)

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


class LocalStore:
    """The index as one local file: gzip when the name ends in ``.gz``, plain JSON otherwise.

    The generation is the file's ``st_mtime_ns``, best effort for local use. Writers replace the file
    atomically and check their precondition under an ``fcntl`` lock on ``<path>.lock``, so two local
    builds cannot interleave; a writer that ignores the lock is not detected.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.uri = str(path)
        self._lock_path = path.with_name(path.name + ".lock")
        self.confirmation_path = path.with_name(path.name + ".confirmed")

    def read(self) -> Stored | None:
        try:
            with self.path.open("rb") as file:
                raw = file.read()
                # The open file is the inode just read even if a writer has replaced the path since.
                generation = os.fstat(file.fileno()).st_mtime_ns
        except FileNotFoundError:
            self._require_folder()
            return None
        except OSError as error:
            raise StoreError(f"{self.uri}: cannot read the index ({error})") from error
        return Stored(_decompress(raw, self.uri), generation)

    def generation(self, *, timeout: float | None = None) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._require_folder()
            return None
        except OSError as error:
            raise StoreError(f"{self.uri}: cannot stat the index ({error})") from error

    def write(self, data: bytes, *, if_generation: int | None) -> int:
        payload = _compress(data) if self.path.name.endswith(".gz") else data
        self._require_folder()
        try:
            with self._locked():
                current = self.generation()
                if current != if_generation:
                    expected = "absent" if if_generation is None else f"at generation {if_generation}"
                    raise GenerationMismatch(
                        f"{self.uri} is no longer {expected}: another writer published first; re-read and retry"
                    )
                return self._replace(payload, current)
        except OSError as error:
            raise StoreError(f"{self.uri}: cannot write the index ({error})") from error

    def confirm(self, confirmation: Confirmation) -> None:
        """Replace the sidecar ``<index>.confirmed`` (JSON) whole, under the writers' lock, while the index
        is still at the confirmed generation; the index file itself, and so its generation, stay as they are."""
        self._require_folder()
        try:
            with self._locked():
                if self.generation() != confirmation.generation:
                    raise GenerationMismatch(
                        f"{self.uri} is no longer at generation {confirmation.generation}: a newer index was "
                        "published (or it was removed) meanwhile; nothing to confirm"
                    )
                fd, temp = tempfile.mkstemp(
                    dir=self.path.parent, prefix=f".{self.confirmation_path.name}.", suffix=".tmp"
                )
                try:
                    with os.fdopen(fd, "wb") as file:
                        file.write(orjson.dumps(confirmation.fields()))
                    Path(temp).replace(self.confirmation_path)
                except BaseException:
                    Path(temp).unlink(missing_ok=True)
                    raise
        except OSError as error:
            raise StoreError(f"{self.confirmation_path}: cannot record the confirmation ({error})") from error

    def confirmation(self) -> Confirmation | None:
        try:
            fields = orjson.loads(self.confirmation_path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as error:
            log.warning("ignoring the unreadable confirmation %s: %s", self.confirmation_path, error)
            return None
        return Confirmation.of(fields if isinstance(fields, dict) else None, self.generation())

    def records(self, folder: str) -> LocalRecords:
        return LocalRecords(self.path.with_name(f"{self.path.name}.{folder}"))

    def _require_folder(self) -> None:
        if not self.path.parent.is_dir():
            raise StoreMissing(
                f"{self.uri}: folder {str(self.path.parent)!r} does not exist; fix the index path or create the folder"
            )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # The lock file stays: removing it would let a waiter lock a file a newcomer no longer sees.
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _replace(self, payload: bytes, current: int | None) -> int:
        mode = self.path.stat().st_mode & 0o777 if current is not None else 0o644
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(payload)
                file.flush()
                os.fchmod(file.fileno(), mode)
                stat = os.fstat(file.fileno())
                # The file system's clock ticks coarsely; two quick writes must still differ.
                if current is not None and stat.st_mtime_ns <= current:
                    os.utime(file.fileno(), ns=(stat.st_atime_ns, current + 1))
                os.fsync(file.fileno())
                generation = os.fstat(file.fileno()).st_mtime_ns
            Path(temp).replace(self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return generation


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

    def read_all(self, *, timeout: float | None = None) -> dict[str, bytes]:
        store = self._store
        found: dict[str, bytes] = {}
        ends = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            # What remains of ``timeout`` for the next request (the listing and each download share it).
            return None if ends is None else max(0.001, ends - time.monotonic())

        try:
            with store._faults("record listing"):
                blobs = list(
                    store._bucket().list_blobs(
                        prefix=self.prefix, timeout=store._clip(left()), retry=store._read_retry(left())
                    )
                )
            for blob in blobs:
                with contextlib.suppress(api_exceptions.NotFound), store._faults("record download"):
                    found[blob.name[len(self.prefix) :]] = blob.download_as_bytes(
                        timeout=store._clip(left()), retry=store._read_retry(left())
                    )
        except api_exceptions.NotFound:
            return {}  # no bucket: nothing recorded
        return found

    def delete(self, name: str) -> None:
        store = self._store
        with contextlib.suppress(api_exceptions.NotFound), store._faults("record deletion"):
            store._bucket().blob(self.prefix + name).delete(timeout=store._timeout, retry=store._read_retry())


class LocalRecords:
    """Files in ``<index file>.<folder>/``; each is linked into place whole, so a reader never sees half."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.uri = str(folder)

    def create(self, name: str, data: bytes) -> bool:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                # link() fails when the name exists: the create-only precondition of the local store.
                os.link(temp, self.folder / name)
            except FileExistsError:
                return False
            finally:
                Path(temp).unlink(missing_ok=True)
        except OSError as error:
            raise StoreError(f"{self.uri}: cannot write record {name} ({error})") from error
        return True

    def read_all(self, *, timeout: float | None = None) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        try:
            entries = sorted(self.folder.iterdir())
        except FileNotFoundError:
            return found
        except OSError as error:
            raise StoreError(f"{self.uri}: cannot list records ({error})") from error
        for entry in entries:
            if entry.name.startswith("."):
                continue  # a record being written
            try:
                found[entry.name] = entry.read_bytes()
            except FileNotFoundError:
                continue  # deleted since the listing
            except OSError as error:
                raise StoreError(f"{self.uri}: cannot read record {entry.name} ({error})") from error
        return found

    def delete(self, name: str) -> None:
        try:
            (self.folder / name).unlink(missing_ok=True)
        except OSError as error:
            raise StoreError(f"{self.uri}: cannot delete record {name} ({error})") from error
