"""Sending one request to a registry: retries within the policy, the rate limit and cool-down of its host,
and a body read under a size cap and a time limit."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from function.deadline import Clock, Deadline, Sleep, earliest
from function.registry._http import RETRYABLE_STATUSES, Reply, TransportError
from function.registry._throttle import HostLimits, RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

# Distribution refuses manifests over 4 MiB; nothing larger is a manifest or a token.
MAX_BODY = 4 * 1024 * 1024
_CHUNK = 64 * 1024


class Sender:
    """Sends requests with retries and counts them; safe to share between threads.

    Each thread gets its own `requests.Session` (sessions are not documented as thread-safe). Sessions
    ignore the environment (proxies, .netrc, CA bundle variables) so that nothing but this code decides
    which host is contacted and which credentials are sent. Redirects are not followed, for the same
    reason.
    """

    def __init__(
        self,
        *,
        timeout: float,
        request_seconds: float,
        retry: RetryPolicy,
        limits: HostLimits,
        sleep: Sleep,
        clock: Clock,
    ) -> None:
        self._timeout = timeout
        self._request_seconds = request_seconds
        self._retry = retry
        self._limits = limits
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._calls = 0
        self._local = threading.local()
        self._sessions: list[requests.Session] = []

    @property
    def calls(self) -> int:
        with self._lock:
            return self._calls

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        deadline: Deadline | None,
        params: Mapping[str, str] | None = None,
        *,
        max_body: int = MAX_BODY,
    ) -> Reply:
        """The reply, retried while its status is retryable and the policy and ``deadline`` allow;
        TransportError where no reply came at all, or whose body is longer than ``max_body``."""
        netloc = urlsplit(url).netloc
        self._limits.check_not_down(netloc, f"{method} {url}")
        bucket = self._limits.bucket(netloc)
        waited = 0.0
        retry_after: float | None = None
        for attempt in range(1, self._retry.max_attempts + 1):
            if deadline is not None and deadline.expired:
                raise TransportError(f"{method} {url} not sent: the decision's deadline has passed")
            bucket.acquire(deadline)
            with self._lock:
                self._calls += 1
            reply: Reply | None = None
            try:
                reply = self._once(method, url, headers, params, attempt, deadline, max_body)
                if reply.status not in RETRYABLE_STATUSES:
                    self._limits.answered(netloc)
                    return reply
                failure = f"HTTP {reply.status}"
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
                failure = f"{type(error).__name__}: {error}"
            retry_after = parse_retry_after(reply.headers.get("Retry-After") if reply else None)
            if attempt == self._retry.max_attempts:
                break
            delay = self._retry.delay(attempt, retry_after)
            if waited + delay > self._retry.max_total_delay or (deadline is not None and delay >= deadline.remaining()):
                break
            log.info("%s %s: %s on attempt %d; retrying in %.2f s", method, url, failure, attempt, delay)
            self._sleep(delay)
            waited += delay
        self._limits.failed(netloc, retry_after)
        if reply is not None:
            return reply
        raise TransportError(f"{method} {url} failed on all {attempt} attempts, the last with {failure}")

    def _once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None,
        attempt: int,
        deadline: Deadline | None,
        max_body: int,
    ) -> Reply:
        # One answer, body included, never takes longer than request_seconds, decision or not (the
        # sync's resolution has none): a body trickling in cannot hold a worker for ever.
        limit = earliest(deadline, Deadline(self._request_seconds, self._clock))
        timeout = limit.clip(self._timeout)
        with self._session().request(
            method,
            url,
            # Identity: the digest is over the bytes as stored, and a compressed body could be a bomb.
            headers={**headers, "Accept-Encoding": "identity"},
            params=params,
            timeout=(timeout, timeout),
            allow_redirects=False,
            stream=True,
        ) as response:
            body = read_capped(response, f"{method} {url}", self._timeout, limit, max_body)
            return Reply(response.status_code, response.headers, body, attempt)

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session


def read_capped(response: requests.Response, what: str, timeout: float, deadline: Deadline, cap: int) -> bytes:
    """The body of a streamed response, at most ``cap`` bytes. Each read returns what has arrived and
    waits no longer than the deadline allows, so a body trickling in a byte at a time cannot hold the
    decision past it."""
    body = bytearray()
    raw = response.raw
    while True:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise TransportError(
                f"{what}: out of time with {len(body)} bytes of the response read; the registry answers too "
                "slowly. The decision is open: retry later"
            )
        _set_read_timeout(raw, min(timeout, remaining))
        chunk = raw.read1(_CHUNK, decode_content=False)
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > cap:
            raise TransportError(f"{what}: the response is larger than {cap} bytes, more than this request may read")


def _set_read_timeout(raw: Any, seconds: float) -> None:
    """Bound the next read of ``raw`` (a urllib3 response) to ``seconds``.

    requests sets the read timeout once per request, and it bounds each wait for bytes, not the whole body:
    a server sending a byte just inside it holds the read for ever. Neither requests nor urllib3 can change
    it mid-body, so this reaches into urllib3's connection for its socket, the one place that depends on
    urllib3's internals. Where there is none (http.client detaches it from the connection of an answer
    with `Connection: close`), only the request's read timeout and the deadline's check between reads
    bound the body."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(seconds)
