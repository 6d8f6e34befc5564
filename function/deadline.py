"""One decision's time budget: every wait on the way to a verdict (a registry body, a token, a retry, a
lock) is clipped to what is left of it, so the verdict line is written in time whatever a dependency does."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
Sleep = Callable[[float], None]

# AUDITOR_DEADLINE_SECONDS when unset: below the audit function's 60 s timeout, with room for the verdict line.
DEFAULT_SECONDS = 50.0


class Deadline:
    def __init__(self, seconds: float, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.at = clock() + seconds

    def remaining(self) -> float:
        return self.at - self._clock()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def clip(self, seconds: float) -> float:
        """``seconds``, or what is left of the budget if that is less (never below zero)."""
        return max(0.0, min(seconds, self.remaining()))


def clip(deadline: Deadline | None, seconds: float) -> float:
    """``seconds`` clipped to ``deadline`` where there is one."""
    return seconds if deadline is None else deadline.clip(seconds)


def earliest(deadline: Deadline | None, other: Deadline) -> Deadline:
    """Whichever of the two leaves less time."""
    return other if deadline is None or other.remaining() < deadline.remaining() else deadline
