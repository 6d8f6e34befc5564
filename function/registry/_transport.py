"""HTTP to container registries: scheme, per-host rate limit, retries and bearer tokens.

Internal to `function.registry`, which turns replies into manifests and errors; this layer knows HTTP only.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import google.auth
import google.auth.credentials
import google.auth.exceptions
import google.auth.transport.requests
import requests
import urllib3.exceptions

from function.bounded import LruCache
from function.deadline import Clock, Deadline, Sleep, clip, earliest
from function.reference import is_loopback

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Distribution refuses manifests over 4 MiB; nothing larger is a manifest or a token.
MAX_BODY = 4 * 1024 * 1024
GOOGLE_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_TOKEN_LIFETIME = 60.0
# Bearer tokens are per repository, and an event may name any repository under a destination.
MAX_CACHED_TOKENS = 1024
# google-auth's own default for a token request, before it is clipped to the decision's deadline.
GOOGLE_TOKEN_TIMEOUT = 120.0
_CHUNK = 64 * 1024
# The longest one request may take, its body included, whatever the per-read timeout lets through.
MAX_REQUEST_SECONDS = 60.0

CredentialsFactory = Callable[[], google.auth.credentials.Credentials]

# Jitter spreads retries of many threads apart; it needs no cryptographic quality, only no shared state.
_jitter = random.SystemRandom()


class TransportError(Exception):
    """No usable answer came back: the message names the request and what went wrong."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # case-insensitive, as requests gives them
    body: bytes
    attempts: int  # requests sent for this reply, retries included


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


def scheme_for(netloc: str) -> str:
    return "http" if is_loopback(netloc) else "https"


def is_google_host(netloc: str) -> bool:
    name = netloc.rsplit(":", 1)[0].lower()
    return name == "gcr.io" or name.endswith((".gcr.io", "-docker.pkg.dev"))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]*))')


def parse_bearer_challenge(header: str | None) -> dict[str, str] | None:
    """The parameters of a `WWW-Authenticate: Bearer ...` challenge, or None for any other scheme."""
    if not header or not header.lstrip().lower().startswith("bearer "):
        return None
    params = header.lstrip()[len("bearer ") :]
    return {key.lower(): quoted or bare for key, quoted, bare in _CHALLENGE_PARAM.findall(params)}


def google_default_credentials() -> google.auth.credentials.Credentials:
    """Application Default Credentials: the function's service account in the cloud."""
    credentials, _project = google.auth.default(scopes=[GOOGLE_SCOPE])
    return credentials


class GoogleTokens:
    """OAuth2 access tokens for Google registries, from credentials created on first use only.

    Laziness matters: creating default credentials may probe the GCE metadata server, which must not
    happen for a run that never contacts a Google host.
    """

    def __init__(self, factory: CredentialsFactory | None) -> None:
        self._factory = factory
        self._credentials: google.auth.credentials.Credentials | None = None
        self._lock = threading.Lock()

    def token(self, deadline: Deadline | None = None) -> str | None:
        """An unexpired access token, or None where no credentials exist (anonymous access then)."""
        if not self._lock.acquire(timeout=deadline.clip(GOOGLE_TOKEN_TIMEOUT) if deadline is not None else -1):
            raise TransportError("another request held the Google token refresh past the deadline")
        try:
            credentials = self._load()
            if credentials is None:
                return None
            if not credentials.valid:
                try:
                    # google-auth leaves refresh() unannotated.
                    credentials.refresh(_ClippedRequest(deadline))  # type: ignore[no-untyped-call]
                except google.auth.exceptions.GoogleAuthError as error:
                    raise TransportError(
                        f"could not refresh the Google access token: {error}; check the service account "
                        "and the metadata server (or GOOGLE_APPLICATION_CREDENTIALS where run locally)"
                    ) from error
            token: str | None = credentials.token
            return token
        finally:
            self._lock.release()

    def _load(self) -> google.auth.credentials.Credentials | None:
        if self._credentials is None and self._factory is not None:
            try:
                self._credentials = self._factory()
            except google.auth.exceptions.DefaultCredentialsError as error:
                log.warning("no Google credentials (%s); reading Google registries anonymously", error)
                self._factory = None
        return self._credentials


class _ClippedRequest(google.auth.transport.requests.Request):
    """google-auth's HTTP for token refreshes, each request bounded by the decision's deadline."""

    def __init__(self, deadline: Deadline | None) -> None:
        super().__init__()
        self._deadline = deadline

    def __call__(self, url: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        limit = clip(self._deadline, GOOGLE_TOKEN_TIMEOUT if timeout is None else timeout)
        if limit <= 0:
            raise google.auth.exceptions.TransportError(  # type: ignore[no-untyped-call]
                "the decision's deadline passed before the token request"
            )
        kwargs["timeout"] = limit
        return super().__call__(url, *args, **kwargs)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class _CachedToken:
    value: str
    expires: float


class Transport:
    """Sends requests to registries; safe to share between threads.

    Each thread gets its own `requests.Session` (sessions are not documented as thread-safe). Sessions
    ignore the environment (proxies, .netrc, CA bundle variables) so that nothing but this code decides
    which host is contacted and which credentials are sent. Redirects are not followed, for the same
    reason.
    """

    def __init__(
        self,
        *,
        timeout: float,
        retry: RetryPolicy,
        rate_per_host: float,
        google_tokens: GoogleTokens,
        sleep: Sleep,
        clock: Clock = time.monotonic,
        realm_hosts: frozenset[str] = frozenset(),
        request_seconds: float = MAX_REQUEST_SECONDS,
    ) -> None:
        self._timeout = timeout
        self._request_seconds = request_seconds
        # Where a bearer challenge may send us for a token, besides the registry's own host.
        self._realm_hosts = realm_hosts
        self._retry = retry
        self._rate_per_host = rate_per_host
        self._google_tokens = google_tokens
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._calls = 0
        self._buckets: dict[str, TokenBucket] = {}
        self._down_until: dict[str, float] = {}
        self._tokens: LruCache[tuple[str, str], _CachedToken] = LruCache(MAX_CACHED_TOKENS)
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

    def request(
        self,
        method: str,
        host: str,
        path: str,
        *,
        headers: Mapping[str, str],
        scope: str,
        deadline: Deadline | None = None,
        max_body: int = MAX_BODY,
    ) -> Reply:
        """Send with retries; on a bearer challenge, fetch a token for `scope` once and send again.

        Returns the final reply whatever its status (retryable statuses only once retries are spent);
        raises TransportError where no reply came at all, or where ``deadline`` passed first,
        or where the body is longer than ``max_body``.
        """
        url = f"{scheme_for(host)}://{host}{path}"
        reply = self._send(
            method, url, {**headers, **self._authorization(host, scope, deadline)}, deadline, max_body=max_body
        )
        if reply.status != 401:
            return reply
        challenge = parse_bearer_challenge(reply.headers.get("WWW-Authenticate"))
        if challenge is None:
            return reply
        token = self._fetch_token(host, scope, challenge, deadline)
        retried = self._send(method, url, {**headers, "Authorization": f"Bearer {token}"}, deadline, max_body=max_body)
        return dataclasses.replace(retried, attempts=reply.attempts + retried.attempts)

    def _authorization(self, host: str, scope: str, deadline: Deadline | None) -> dict[str, str]:
        cached = self._tokens.get((host, scope))
        if cached is not None and cached.expires > self._clock():
            return {"Authorization": f"Bearer {cached.value}"}
        google_token = self._google_tokens.token(deadline) if is_google_host(host) else None
        return {"Authorization": f"Bearer {google_token}"} if google_token else {}

    def _fetch_token(self, host: str, scope: str, challenge: Mapping[str, str], deadline: Deadline | None) -> str:
        """Anonymous token exchange with the realm the registry named, if it is one we may contact."""
        realm = challenge.get("realm", "")
        self._check_realm(host, realm)
        params = {key: challenge[key] for key in ("service", "scope") if challenge.get(key)}
        reply = self._send("GET", realm, {}, deadline, params)
        if reply.status != 200:
            raise TransportError(f"token service {realm} answered HTTP {reply.status} for {params}")
        value, lifetime = _read_token(reply.body, realm)
        # Expire early so that a token never runs out between the check and the registry's answer.
        self._tokens.put((host, scope), _CachedToken(value, self._clock() + lifetime * 0.9))
        return value

    def _check_realm(self, host: str, realm: str) -> None:
        """A token realm is the registry's own host or another registry of the manifests, spoken to over
        https, or plain http where the registry itself is on loopback: a registry cannot make the auditor
        contact any other host, or send anything in the clear over a network."""
        parts = urlsplit(realm)
        netloc = parts.netloc.lower().removesuffix(":443") if parts.scheme == "https" else parts.netloc.lower()
        in_clear_on_loopback = parts.scheme == "http" and is_loopback(host) and is_loopback(netloc)
        if netloc not in {host, *self._realm_hosts} or not (parts.scheme == "https" or in_clear_on_loopback):
            raise TransportError(
                f"{host} asked for a token from {realm!r:.200}, which is neither {host} nor another registry "
                "named in the promotion manifests over https (plain http only between loopback hosts); "
                "nothing was sent there. Check the registry's token service (or what answers in its place)"
            )

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        deadline: Deadline | None,
        params: Mapping[str, str] | None = None,
        *,
        max_body: int = MAX_BODY,
    ) -> Reply:
        netloc = urlsplit(url).netloc
        self._check_not_down(netloc, method, url)
        bucket = self._bucket(netloc)
        waited = 0.0
        retry_after: float | None = None
        for attempt in range(1, self._retry.max_attempts + 1):
            _check_deadline(deadline, method, url)
            bucket.acquire(deadline)
            self._count()
            reply: Reply | None = None
            try:
                reply = self._once(method, url, headers, params, attempt, deadline, max_body)
                if reply.status not in RETRYABLE_STATUSES:
                    with self._lock:
                        self._down_until.pop(netloc, None)
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
        cooldown = min(max(self._retry.cooldown, retry_after or 0.0), self._retry.max_delay)
        with self._lock:
            self._down_until[netloc] = self._clock() + cooldown
        if reply is not None:
            return reply
        raise TransportError(f"{method} {url} failed on all {attempt} attempts, the last with {failure}")

    def _check_not_down(self, netloc: str, method: str, url: str) -> None:
        with self._lock:
            until = self._down_until.get(netloc)
        remaining = until - self._clock() if until is not None else 0.0
        if remaining > 0:
            raise TransportError(
                f"{method} {url} not sent: {netloc} failed every attempt moments ago and is left alone for "
                f"another {remaining:.1f} s"
            )

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
            body = _read_capped(response, f"{method} {url}", self._timeout, limit, max_body)
            return Reply(response.status_code, response.headers, body, attempt)

    def _bucket(self, netloc: str) -> TokenBucket:
        with self._lock:
            bucket = self._buckets.get(netloc)
            if bucket is None:
                bucket = TokenBucket(self._rate_per_host, clock=self._clock, sleep=self._sleep)
                self._buckets[netloc] = bucket
            return bucket

    def _count(self) -> None:
        with self._lock:
            self._calls += 1

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session


def _read_capped(response: requests.Response, what: str, timeout: float, deadline: Deadline, cap: int) -> bytes:
    """The body, at most ``cap`` bytes. Each read returns what has arrived and waits no longer than the
    deadline allows, so a body trickling in a byte at a time cannot hold the decision past it."""
    body = bytearray()
    raw = response.raw
    while True:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise TransportError(
                f"{what}: out of time with {len(body)} bytes of the response read; the registry answers too "
                "slowly. The decision is open: retry later"
            )
        sock = getattr(getattr(raw, "connection", None), "sock", None)
        if sock is not None:
            sock.settimeout(min(timeout, remaining))
        chunk = raw.read1(_CHUNK, decode_content=False)
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > cap:
            raise TransportError(f"{what}: the response is larger than {cap} bytes, more than this request may read")


def _check_deadline(deadline: Deadline | None, method: str, url: str) -> None:
    if deadline is not None and deadline.expired:
        raise TransportError(f"{method} {url} not sent: the decision's deadline has passed")


def _read_token(body: bytes, realm: str) -> tuple[str, float]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise TransportError(f"token service {realm} answered with something that is not JSON") from None
    if not isinstance(document, dict):
        raise TransportError(f"token service {realm} answered with JSON that is not an object")
    value = document.get("token") or document.get("access_token")
    if not isinstance(value, str) or not value:
        raise TransportError(f"token service {realm} answered without a token or access_token")
    lifetime = document.get("expires_in")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        return value, DEFAULT_TOKEN_LIFETIME
    return value, float(lifetime)
