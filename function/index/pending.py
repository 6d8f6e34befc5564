"""k8s.io commits that ``sync_index`` accepted but has not published yet, kept beside the index.

A sync records its commit before it starts rebuilding, so the auditor can tell an index that is merely
behind (a promotion racing its own manifest sync: wait) from one that is wrong (alarm). One record per
commit, created once: concurrent syncs of the same commit keep the first record and its time, and syncs
of different commits never touch each other's. A publication clears the records it makes obsolete.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

import orjson

from function.deadline import Clock
from function.index.digests import Source
from function.storage.base import IndexStore, Records

log = logging.getLogger(__name__)

FOLDER = "pending"


def commit_time(text: str) -> dt.datetime:
    """A commit time (ISO 8601, as GitHub writes it); ValueError when it is not one."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Pending:
    commit: str
    committed_at: str | None
    recorded_at: float
    """Unix time at which the first sync of this commit recorded it."""

    def newer_than(self, source: Source) -> bool:
        """Whether the index built from ``source`` lacks this commit. Without both times, it is
        taken as newer: waiting (bounded by the grace) is safer than an alarm."""
        if self.commit == source.commit:
            return False
        if not self.committed_at or not source.committed_at:
            return True
        return commit_time(self.committed_at) > commit_time(source.committed_at)

    def to_json(self) -> bytes:
        return orjson.dumps({"commit": self.commit, "committed_at": self.committed_at, "recorded_at": self.recorded_at})

    @classmethod
    def from_json(cls, data: bytes) -> Pending:
        document = orjson.loads(data)
        commit, committed_at, recorded_at = document["commit"], document.get("committed_at"), document["recorded_at"]
        if not isinstance(commit, str) or not isinstance(recorded_at, int | float):
            raise TypeError("a pending record needs a commit and a recorded_at time")
        if committed_at is not None:
            if not isinstance(committed_at, str):
                raise TypeError("a pending record's committed_at is not text")
            commit_time(committed_at)
        return cls(commit, committed_at, float(recorded_at))


class PendingCommits:
    """The pending records of one index (``<index>.pending/<commit>.json``)."""

    def __init__(self, records: Records, *, wall: Clock = time.time) -> None:
        self.records = records
        self.wall = wall

    @classmethod
    def beside(cls, store: IndexStore, *, wall: Clock = time.time) -> PendingCommits:
        return cls(store.records(FOLDER), wall=wall)

    def record(self, commit: str, committed_at: str | None) -> bool:
        """Record ``commit`` as accepted; False when it was recorded before (it keeps its first time)."""
        created = self.records.create(_name(commit), Pending(commit, committed_at, self.wall()).to_json())
        if not created:
            log.info("commit %s was already recorded as pending", commit)
        return created

    def all(self) -> list[Pending]:
        """Every readable record, oldest commit first; a damaged record is skipped with a warning."""
        found = []
        for name, data in self.records.read_all().items():
            try:
                found.append(Pending.from_json(data))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                log.warning("ignoring damaged pending record %s/%s: %s", self.records.uri, name, error)
        return sorted(found, key=lambda p: (p.committed_at or "", p.recorded_at))

    def newer_than(self, source: Source) -> list[Pending]:
        return [p for p in self.all() if p.newer_than(source)]

    def clear(self, published: Source) -> int:
        """Remove the records that ``published`` (now in the store, or found equal to it) makes obsolete.

        A record without a commit time cannot be ordered; a publication with a time clears it rather than
        let it hold verdicts back and then raise a stale-sync alarm for a commit nobody can place."""
        cleared = 0
        for pending in self.all():
            if not pending.newer_than(published) or (published.committed_at and not pending.committed_at):
                self.records.delete(_name(pending.commit))
                cleared += 1
        return cleared


def _name(commit: str) -> str:
    return f"{commit}.json"
