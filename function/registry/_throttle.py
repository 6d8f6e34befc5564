"""How hard registries are pressed: a rate per host, retries with backoff, and a cool-down for a host that
failed every attempt."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

import urllib3.exceptions
import urllib3.util

from function.deadline import Clock, Deadline, Sleep
from function.registry._http import TransportError

# Jitter spreads retries of many threads apart; it needs no cryptographic quality, only no shared state.
_jitter = random.SystemRandom()
# urllib3 reads the header for us; its own retry machinery stays off (`RetryPolicy` decides).
_RETRY_AFTER = urllib3.util.Retry()


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total_delay: float = 60.0
    # After a host failed every attempt, further requests fail at once for this long (or its Retry-After,
    # up to max_delay): a registry in trouble is not hammered by every event, and a dead host costs one
    # retry budget per cool-down, not one per event.
    cooldown: float = 10.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Wait before attempt `attempt + 1`: the server's Retry-After, else full-jitter exponential backoff."""
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        return _jitter.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date, a past date 0); None if absent
    or unreadable (a negative or fractional number included). urllib3 caps it at six hours, far above
    `RetryPolicy.max_delay`."""
    if not value:
        return None
    try:
        return float(_RETRY_AFTER.parse_retry_after(value))
    except (urllib3.exceptions.InvalidHeader, OverflowError, ValueError):
        return None


class TokenBucket:
    """Allows `rate` requests a second on average, in bursts of up to `burst`; thread-safe.

    A caller reserves its token under the lock and sleeps outside it, so waiting threads queue in order
    without holding each other up.
    """

    def __init__(self, rate: float, *, burst: float | None = None, clock: Clock, sleep: Sleep) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        self._rate = rate
        self._burst = max(1.0, rate if burst is None else burst)
        self._tokens = self._burst
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self, deadline: Deadline | None = None) -> None:
        """Take one request's token, waiting for it; raises TransportError (taking none) when the wait
        would outlast ``deadline``."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            wait = (1.0 - self._tokens) / self._rate
            if deadline is not None and wait > deadline.remaining():
                raise TransportError(f"the rate limit would hold the request {wait:.1f} s, past the deadline")
            self._tokens -= 1.0
        if wait > 0:
            self._sleep(wait)


class HostLimits:
    """The rate limit and cool-down of every host; thread-safe."""

    def __init__(self, rate_per_host: float, retry: RetryPolicy, *, clock: Clock, sleep: Sleep) -> None:
        self._rate_per_host = rate_per_host
        self._retry = retry
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}
        self._down_until: dict[str, float] = {}

    def bucket(self, netloc: str) -> TokenBucket:
        with self._lock:
            bucket = self._buckets.get(netloc)
            if bucket is None:
                bucket = TokenBucket(self._rate_per_host, clock=self._clock, sleep=self._sleep)
                self._buckets[netloc] = bucket
            return bucket

    def check_not_down(self, netloc: str, what: str) -> None:
        """Raises TransportError, sending nothing, while ``netloc`` cools down."""
        with self._lock:
            until = self._down_until.get(netloc)
        remaining = until - self._clock() if until is not None else 0.0
        if remaining > 0:
            raise TransportError(
                f"{what} not sent: {netloc} failed every attempt moments ago and is left alone for "
                f"another {remaining:.1f} s"
            )

    def answered(self, netloc: str) -> None:
        with self._lock:
            self._down_until.pop(netloc, None)

    def failed(self, netloc: str, retry_after: float | None) -> None:
        """``netloc`` failed every attempt: leave it alone for the cool-down, or its Retry-After if longer."""
        cooldown = min(max(self._retry.cooldown, retry_after or 0.0), self._retry.max_delay)
        with self._lock:
            self._down_until[netloc] = self._clock() + cooldown
