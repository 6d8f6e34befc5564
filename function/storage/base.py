"""What every store offers, wherever it keeps its object: ``IndexStore`` and its ``Records``.

Every write is conditional on the generation the writer last read, so two syncs that race cannot lose
each other's work: the second one gets ``GenerationMismatch``, re-reads and tries again. Beside the object,
in the same bucket or folder, ``Records`` keeps small documents that are created once (the pending commits).
A ``Confirmation`` says that a sync found the stored generation current without writing a new one.
"""

from __future__ import annotations

import datetime as dt
import gzip
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from function.storage.errors import CorruptIndex

GZIP_MAGIC = b"\x1f\x8b"
# gzip writes the current time into its header; a fixed one makes equal indexes equal bytes, which is
# what lets a write whose reply was lost recognise itself afterwards.
_GZIP_MTIME = 0
_GZIP_LEVEL = 6


@dataclass(frozen=True)
class Stored:
    data: bytes
    """The object's bytes as written, already decompressed."""
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


class IndexStore(Protocol):
    uri: str

    def read(self) -> Stored | None:
        """The stored index, or None when nothing has been stored yet."""
        ...

    def generation(self) -> int | None:
        """The current generation from metadata alone (no download), or None when absent."""
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

    def read_all(self) -> dict[str, bytes]:
        """Every document by name (none when the folder does not exist)."""
        ...

    def delete(self, name: str) -> None:
        """Remove ``name``; a name that is already gone is not an error."""
        ...


def decompress(raw: bytes, uri: str) -> bytes:
    """The stored bytes as written: gzip is recognised by its magic, anything else is taken as it is."""
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise CorruptIndex(
            f"{uri}: the stored index is not valid gzip ({error}); rebuild it with build-index or sync_index"
        ) from error


def compress(data: bytes) -> bytes:
    """Gzip whose bytes depend on ``data`` alone (see ``_GZIP_MTIME``)."""
    return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=_GZIP_MTIME)
