"""Simulated time for the tests: it moves only when a test, or a sleep, moves it."""

from __future__ import annotations

# What ``wall`` reads at ``now == 0``: a time in 2027, well after every committed-at of the tests.
WALL_EPOCH = 1_800_000_000.0


class FakeClock:
    """Call it (or ``monotonic``) for intervals, ``wall`` for wall-clock times (pending records' ages);
    ``sleep`` moves it on and is recorded in ``sleeps``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL_EPOCH + self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
