"""How current an audit instance's index is, and whether it is behind a commit that is being synced.

``WatchedIndex`` is the audit function's index source (``source.IndexSource``), built of two watches:

``IndexWatch`` checks the published generation (one metadata call) at least every ``refresh_seconds``
whatever the verdicts are, so a new destination or a yanked digest is seen within that time, and before a
would-be REJECTED at most once per ``MIN_CHECK_INTERVAL``, so a burst of alarms costs one call a second, not one
per event. A newer generation that cannot be decoded is reported once and then left alone until a newer
one appears.

``PendingWatch`` reads the commits ``sync_index`` accepted but has not published (the same rate limit)
and answers whether the index is behind one of them within the grace: then a would-be REJECTED waits
(RETRY ``index behind``). A pending commit older than the grace is a stuck sync: the event is decided
against the index there is, and an ERROR line names the commit.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time

from function import verdict as v
from function.deadline import Clock, Deadline
from function.index.digests import DigestIndex, InvalidIndex, Source
from function.index.pending import Pending, PendingCommits
from function.index.publish import read_index
from function.index.source import IndexUnavailable
from function.settings import DEFAULT_GRACE_SECONDS, DEFAULT_REFRESH_SECONDS
from function.storage.base import IndexStore
from function.storage.errors import CorruptIndex, StoreError

log = logging.getLogger(__name__)

MIN_CHECK_INTERVAL = 1.0


class IndexWatch:
    def __init__(
        self,
        store: IndexStore,
        *,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        clock: Clock = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self.logger = logger or logging.getLogger(v.VERDICT_LOGGER)
        self.generation: int | None = None
        self.checks = 0
        """Generation checks made (metadata calls), for the benchmark and the tests."""
        self._checked_at = -math.inf
        self._broken: int | None = None

    def load(self) -> DigestIndex:
        """The published index, read for the first time; IndexUnavailable when there is none to be had."""
        try:
            index = read_index(self.store)
        except (StoreError, InvalidIndex) as error:
            raise IndexUnavailable("index unavailable", str(error)) from None
        if index is None:
            raise IndexUnavailable(
                "index unavailable", f"no digest index at {self.store.uri} yet: run sync_index or build-index"
            )
        self.generation = index.generation
        self._checked_at = self.clock()
        return index

    def due(self) -> bool:
        """Whether the generation has gone unchecked for ``refresh_seconds``."""
        return self.clock() - self._checked_at >= self.refresh_seconds

    def newer(self, *, eager: bool) -> DigestIndex | None:
        """A newer published index, or None. ``eager`` (before a would-be REJECTED) checks at most once per
        ``MIN_CHECK_INTERVAL``; otherwise only when ``due()``. A storage fault leaves the decision open."""
        now = self.clock()
        if now - self._checked_at < (MIN_CHECK_INTERVAL if eager else self.refresh_seconds):
            return None
        generation = None
        try:
            self.checks += 1
            generation = self.store.generation()
            self._checked_at = now
            if generation is None or generation in (self.generation, self._broken):
                return None
            index = read_index(self.store)
            if index is None:
                return None
        except (CorruptIndex, InvalidIndex) as error:
            self._unreadable(generation, error)
            return None
        except StoreError as error:
            raise IndexUnavailable(
                "index unavailable", f"checking {self.store.uri} for a newer index failed: {error}"
            ) from None
        self.generation = index.generation
        log.info("loaded index generation %s (%s)", index.generation, index.source.commit)
        return index

    def _unreadable(self, generation: int | None, error: Exception) -> None:
        self._broken = generation
        report_unreadable(self.logger, self.store.uri, generation, self.generation, error)


def report_unreadable(
    logger: logging.Logger, uri: str, generation: int | None, in_use: int | None, error: Exception
) -> None:
    """The ERROR line of a newer index this instance cannot read (once per generation)."""
    v.report(
        logger,
        logging.ERROR,
        f"the index at {uri} generation {generation} cannot be read ({error}); this instance keeps "
        f"deciding with generation {in_use} until a newer one is published: rebuild it with "
        "sync_index (a resync) or build-index",
        freshness="index_unreadable",
        uri=uri,
        generation=generation,
        in_use=in_use,
    )


class PendingWatch:
    def __init__(
        self,
        pending: PendingCommits,
        *,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self.pending = pending
        self.grace_seconds = grace_seconds
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self.wall = wall
        self.logger = logger or logging.getLogger(v.VERDICT_LOGGER)
        self.reads = 0
        """Reads of the pending records made, for the benchmark and the tests."""
        self._known: list[Pending] = []
        self._read_at = -math.inf
        self._reported: dict[str, float] = {}

    def behind(self, index: DigestIndex) -> str | None:
        """Why a would-be REJECTED must wait for the sync, or None when the index is not behind a commit
        accepted within the grace. A fault reading the records leaves the decision open."""
        try:
            waiting = self._waiting(index.source, MIN_CHECK_INTERVAL)
        except StoreError as error:
            raise IndexUnavailable(
                "index unavailable", f"reading the pending commits at {self.pending.records.uri} failed: {error}"
            ) from None
        young = [p for p in waiting if self.wall() - p.recorded_at < self.grace_seconds]
        if not young:
            return None
        newest = young[-1]
        return (
            f"the index (commit {index.source.commit} of {index.source.committed_at}) is behind k8s.io commit "
            f"{newest.commit} of {newest.committed_at}, accepted by sync_index {self.wall() - newest.recorded_at:.0f}s "
            f"ago and not published yet; this is held back for up to {self.grace_seconds:.0f}s while it syncs"
        )

    def check(self, index: DigestIndex) -> None:
        """The periodic look (every ``refresh_seconds``): reports a stuck sync even when nothing is rejected."""
        try:
            self._waiting(index.source, self.refresh_seconds)
        except StoreError as error:
            log.warning("reading the pending commits at %s failed: %s", self.pending.records.uri, error)

    def _waiting(self, source: Source, max_age: float) -> list[Pending]:
        now = self.clock()
        if now - self._read_at >= max_age:
            self.reads += 1
            self._known = self.pending.all()
            self._read_at = now
        waiting = [p for p in self._known if p.newer_than(source)]
        for pending in waiting:
            if self.wall() - pending.recorded_at >= self.grace_seconds:
                self._stale(pending, source, now)
        return waiting

    def _stale(self, pending: Pending, source: Source, now: float) -> None:
        if now - self._reported.get(pending.commit, -math.inf) < self.refresh_seconds:
            return
        self._reported[pending.commit] = now
        report_stale(self.logger, pending, source, self.grace_seconds)


def report_stale(logger: logging.Logger, pending: Pending, source: Source, grace_seconds: float) -> None:
    """The ERROR line of a commit accepted by sync_index and not published within the grace."""
    since = dt.datetime.fromtimestamp(pending.recorded_at, dt.UTC).isoformat(timespec="seconds")
    v.report(
        logger,
        logging.ERROR,
        f"sync_index accepted k8s.io commit {pending.commit} of {pending.committed_at} at {since} and has not "
        f"published it within {grace_seconds:.0f}s; events are decided against the index of commit "
        f"{source.commit}, so promotions of that commit may be REJECTED. See the runbook: stale sync",
        freshness="stale_sync",
        commit=pending.commit,
        committed_at=pending.committed_at,
        pending_since=since,
        index_commit=source.commit,
    )


class WatchedIndex:
    """The published index as an audit instance sees it: loaded on first use, checked for a newer
    generation every ``refresh_seconds`` whatever the verdicts (and on demand before a would-be REJECTED,
    at most once a second), and held back while a newer commit is being synced."""

    def __init__(self, watch: IndexWatch, pending: PendingWatch) -> None:
        self.watch = watch
        self.pending = pending
        self._index: DigestIndex | None = None
        # Decisions may run side by side; loading and swapping the index is one at a time.
        self._lock = threading.Lock()

    def current(self, deadline: Deadline | None = None) -> DigestIndex:
        with self._lock:
            if self._index is None:
                self._index = self.watch.load()
            elif self.watch.due():
                # The periodic check, whatever the verdict will be: a new destination or a yanked digest is
                # seen within the refresh interval, and a stuck sync is reported even when nothing is rejected.
                self._index = self.watch.newer(eager=False) or self._index
                self.pending.check(self._index)
            return self._index

    def fresher(self, deadline: Deadline | None = None) -> DigestIndex | None:
        with self._lock:
            newer = self.watch.newer(eager=True)
            if newer is not None:
                self._index = newer
            return newer

    def behind(self, deadline: Deadline | None = None) -> str | None:
        with self._lock:
            return self.pending.behind(self._loaded())

    def _loaded(self) -> DigestIndex:
        if self._index is None:
            raise IndexUnavailable("index unavailable", f"no digest index read from {self.watch.store.uri} yet")
        return self._index


class HeldIndex:
    """One index read once (the CLI's), held back like the function's while a newer commit is being synced."""

    def __init__(self, index: DigestIndex, pending: PendingWatch) -> None:
        self.index = index
        self.pending = pending

    def current(self, deadline: Deadline | None = None) -> DigestIndex:
        return self.index

    def fresher(self, deadline: Deadline | None = None) -> DigestIndex | None:
        return None

    def behind(self, deadline: Deadline | None = None) -> str | None:
        return self.pending.behind(self.index)
