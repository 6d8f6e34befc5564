"""The real local index store, counting what is asked of it (for tests and the benchmark)."""

from __future__ import annotations

from pathlib import Path

from function.storage.base import Stored
from function.storage.local import LocalStore


class CountingStore(LocalStore):
    """Counts downloads (``reads``) and metadata calls (``lookups``)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads = self.lookups = 0

    def read(self) -> Stored | None:
        self.reads += 1
        return super().read()

    def generation(self) -> int | None:
        self.lookups += 1
        return super().generation()
