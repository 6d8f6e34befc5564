"""Which store a URI names: ``gs://bucket/object`` in Cloud Storage, or a local path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from function.storage.base import IndexStore
from function.storage.local import LocalStore

if TYPE_CHECKING:
    from function.storage.gcs import ClientFactory


def open_store(
    uri: str,
    *,
    client_factory: ClientFactory | None = None,
    timeout: float | None = None,
    retry_timeout: float | None = None,
) -> IndexStore:
    """The store for ``gs://bucket/object`` or a local path.

    ``client_factory``, ``timeout`` and ``retry_timeout`` apply to Cloud Storage only (None: its defaults).
    """
    if not uri or not uri.strip():
        raise ValueError("index URI is empty: give gs://bucket/object or a local path")
    if uri[:3].lower() == "gs:":
        bucket, name = parse_gs_uri(uri)
        # google-cloud-storage costs about 0.13 s to import: a CLI reading a local index never pays it.
        from function.storage import gcs

        return gcs.GcsStore(
            bucket,
            name,
            client_factory=client_factory,
            timeout=gcs.DEFAULT_TIMEOUT if timeout is None else timeout,
            retry_timeout=gcs.DEFAULT_RETRY_TIMEOUT if retry_timeout is None else retry_timeout,
        )
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
