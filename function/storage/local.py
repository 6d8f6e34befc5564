"""The store on a local disk: one file, and its records in a folder beside it."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson

from function.storage.base import Confirmation, Stored, compress, decompress
from function.storage.errors import GenerationMismatch, StoreError, StoreMissing

log = logging.getLogger(__name__)


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
        return Stored(decompress(raw, self.uri), generation)

    def generation(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._require_folder()
            return None
        except OSError as error:
            raise StoreError(f"{self.uri}: cannot stat the index ({error})") from error

    def write(self, data: bytes, *, if_generation: int | None) -> int:
        payload = compress(data) if self.path.name.endswith(".gz") else data
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

    def read_all(self) -> dict[str, bytes]:
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
