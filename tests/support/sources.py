"""Index sources for tests of the decision: a fixed index whose ``fresher`` answers from a callback."""

from __future__ import annotations

from collections.abc import Callable

from function.deadline import Deadline
from function.index.digests import DigestIndex


class Refreshing:
    """``index`` until ``newer`` returns an index, which then becomes the current one."""

    def __init__(self, index: DigestIndex, newer: Callable[[], DigestIndex | None]) -> None:
        self.index = index
        self.newer = newer

    def current(self, deadline: Deadline | None = None) -> DigestIndex:
        return self.index

    def fresher(self, deadline: Deadline | None = None) -> DigestIndex | None:
        newer = self.newer()
        if newer is not None:
            self.index = newer
        return newer

    def behind(self, deadline: Deadline | None = None) -> str | None:
        return None
