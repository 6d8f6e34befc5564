"""Where a decision takes its index from: one source answers which index is current, whether a newer one
has been published, and whether the current one is behind a commit that is being synced.

The audit function's source watches the store (``freshness.WatchedIndex``); the sweep and tests decide by
one fixed index (``FixedIndex``). Either way the index itself is a value that no decision changes.
"""

from __future__ import annotations

from typing import Protocol

from function.deadline import Deadline
from function.index.digests import DigestIndex


class IndexUnavailable(Exception):
    """No index to decide with right now (none published yet, or the store failed): the decision waits.

    ``reason`` is the verdict line's short reason; the message carries the details."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class IndexSource(Protocol):
    def current(self, deadline: Deadline | None = None) -> DigestIndex:
        """The index to decide with now; raises ``IndexUnavailable`` when there is none to be had."""
        ...

    def fresher(self, deadline: Deadline | None = None) -> DigestIndex | None:
        """A newer published index, which becomes the current one, or None (checked at most once a second:
        before a would-be REJECTED, so that a promotion merged moments ago raises no alarm)."""
        ...

    def behind(self, deadline: Deadline | None = None) -> str | None:
        """Why a would-be REJECTED must wait for a sync that is publishing a newer commit, or None."""
        ...


class FixedIndex:
    """One index, never refreshed and never behind: a sweep is judged by one index from start to end."""

    def __init__(self, index: DigestIndex) -> None:
        self.index = index

    def current(self, deadline: Deadline | None = None) -> DigestIndex:
        return self.index

    def fresher(self, deadline: Deadline | None = None) -> DigestIndex | None:
        return None

    def behind(self, deadline: Deadline | None = None) -> str | None:
        return None


class NoIndex:
    """No index could be read: every decision that needs one waits (RETRY), as the function's would."""

    def __init__(self, detail: str) -> None:
        self.detail = detail

    def current(self, deadline: Deadline | None = None) -> DigestIndex:
        raise IndexUnavailable("index unavailable", self.detail)

    def fresher(self, deadline: Deadline | None = None) -> DigestIndex | None:
        return None

    def behind(self, deadline: Deadline | None = None) -> str | None:
        return None
