"""Every wait within the deadline (issue 16): storage reads made during a decision (the generation check,
the pending commits) are clipped to the decision's remaining time, as registry calls are."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from function.auditor import Auditor
from function.index.digests import Source
from function.index.freshness import IndexWatch, PendingWatch, WatchedIndex
from function.index.pending import PendingCommits
from function.index.publish import rebuild
from function.storage.errors import StoreError
from function.storage.local import LocalRecords, LocalStore
from tests.support import scenario

SLOW = 3.0
DEADLINE = 2.0
HOST = "127.0.0.1:9"
STRAY = "sha256:" + "5" * 64


def _slow(timeout: float | None) -> None:
    """What a storage call that takes SLOW seconds does under ``timeout``: the client gives up in time."""
    if timeout is not None and timeout < SLOW:
        time.sleep(timeout)
        raise StoreError(f"timed out after {timeout:.1f}s")
    time.sleep(SLOW)


class SlowStore(LocalStore):
    def __init__(self, path: Path, *, slow_generation: bool, slow_records: bool) -> None:
        super().__init__(path)
        self.slow_generation, self.slow_records = slow_generation, slow_records
        self.timeouts: list[float | None] = []

    def generation(self, *, timeout: float | None = None) -> int | None:
        if self.slow_generation:
            self.timeouts.append(timeout)
            _slow(timeout)
        return super().generation()

    def records(self, folder: str) -> LocalRecords:
        store = self

        class SlowRecords(LocalRecords):
            def read_all(self, *, timeout: float | None = None) -> dict[str, bytes]:
                if store.slow_records:
                    store.timeouts.append(timeout)
                    _slow(timeout)
                return super().read_all()

        return SlowRecords(self.path.parent / f"{self.path.name}.{folder}")


def auditor(tmp_path: Path, **slow: bool) -> tuple[Auditor, SlowStore]:
    root = tmp_path / "manifests"
    scenario.write_tree(root, HOST, {"pause": {"sha256:" + "1" * 64: ["3.10"]}})
    out = tmp_path / "index.json"
    rebuild(root, LocalStore(out), source=Source(commit="c1"))
    store = SlowStore(out, **slow)
    source = WatchedIndex(IndexWatch(store), PendingWatch(PendingCommits.beside(store)))
    source.current()  # loaded, as an instance's first decision does
    time.sleep(1.1)  # the eager check before a would-be REJECTED is made at most once a second
    return Auditor(source, deadline_seconds=DEADLINE), store


@pytest.mark.parametrize("slow", ["slow_generation", "slow_records"])
def test_a_slow_storage_read_ends_with_the_decisions_deadline(tmp_path: Path, slow: str) -> None:
    flags = {"slow_generation": False, "slow_records": False, slow: True}
    decide, store = auditor(tmp_path, **flags)
    started = time.monotonic()
    verdict = decide.audit_payload(
        json.dumps({"action": "INSERT", "digest": f"{HOST}/us-central1/images/pause@{STRAY}"})
    )
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + 0.5, f"the verdict took {elapsed:.1f}s"
    assert store.timeouts and all(t is not None and t <= DEADLINE for t in store.timeouts)
    assert (verdict.verdict, verdict.reason) == ("RETRY", "deadline exceeded"), verdict
