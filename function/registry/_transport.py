"""HTTP to container registries: scheme, per-host rate limit, retries and bearer tokens.

Internal to `function.registry`, which turns replies into manifests and errors; this layer knows HTTP only.
"""

from __future__ import annotations

import dataclasses
import email.utils
import ipaddress
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import google.auth
import google.auth.credentials
import google.auth.exceptions
import google.auth.transport.requests
import requests

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Distribution refuses manifests over 4 MiB; nothing larger is a manifest or a token.
MAX_BODY = 4 * 1024 * 1024
GOOGLE_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_TOKEN_LIFETIME = 60.0

Clock = Callable[[], float]
Sleep = Callable[[float], None]
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

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            self._tokens -= 1.0
            wait = -self._tokens / self._rate
        if wait > 0:
            self._sleep(wait)


def is_loopback(netloc: str) -> bool:
    """True for `127.0.0.0/8`, `localhost` and `[::1]`, with or without a port."""
    name = netloc[1 : netloc.find("]")] if netloc.startswith("[") else netloc.rsplit(":", 1)[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


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

    def token(self) -> str | None:
        """An unexpired access token, or None where no credentials exist (anonymous access then)."""
        with self._lock:
            credentials = self._load()
            if credentials is None:
                return None
            if not credentials.valid:
                try:
                    # google-auth leaves refresh() unannotated.
                    credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
                except google.auth.exceptions.GoogleAuthError as error:
                    raise TransportError(
                        f"could not refresh the Google access token: {error}; check the service account "
                        "and the metadata server (or GOOGLE_APPLICATION_CREDENTIALS where run locally)"
                    ) from error
            token: str | None = credentials.token
            return token

    def _load(self) -> google.auth.credentials.Credentials | None:
        if self._credentials is None and self._factory is not None:
            try:
                self._credentials = self._factory()
            except google.auth.exceptions.DefaultCredentialsError as error:
                log.warning("no Google credentials (%s); reading Google registries anonymously", error)
                self._factory = None
        return self._credentials


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
    ) -> None:
        self._timeout = timeout
        self._retry = retry
        self._rate_per_host = rate_per_host
        self._google_tokens = google_tokens
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._calls = 0
        self._buckets: dict[str, TokenBucket] = {}
        self._down_until: dict[str, float] = {}
        self._tokens: dict[tuple[str, str], _CachedToken] = {}
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

    def request(self, method: str, host: str, path: str, *, headers: Mapping[str, str], scope: str) -> Reply:
        """Send with retries; on a bearer challenge, fetch a token for `scope` once and send again.

        Returns the final reply whatever its status (retryable statuses only once retries are spent);
        raises TransportError where no reply came at all.
        """
        url = f"{scheme_for(host)}://{host}{path}"
        reply = self._send(method, url, {**headers, **self._authorization(host, scope)})
        if reply.status != 401:
            return reply
        challenge = parse_bearer_challenge(reply.headers.get("WWW-Authenticate"))
        if challenge is None:
            return reply
        token = self._fetch_token(host, scope, challenge)
        retried = self._send(method, url, {**headers, "Authorization": f"Bearer {token}"})
        return dataclasses.replace(retried, attempts=reply.attempts + retried.attempts)

    def _authorization(self, host: str, scope: str) -> dict[str, str]:
        with self._lock:
            cached = self._tokens.get((host, scope))
        if cached is not None and cached.expires > self._clock():
            return {"Authorization": f"Bearer {cached.value}"}
        google_token = self._google_tokens.token() if is_google_host(host) else None
        return {"Authorization": f"Bearer {google_token}"} if google_token else {}

    def _fetch_token(self, host: str, scope: str, challenge: Mapping[str, str]) -> str:
        """Anonymous token exchange with the realm the registry named."""
        realm = challenge.get("realm", "")
        parts = urlsplit(realm)
        if not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.netloc))):
            raise TransportError(
                f"{host} asked for a token from {realm!r}; only https realms (or http on loopback) are "
                "followed, so the registry cannot be read anonymously"
            )
        params = {key: challenge[key] for key in ("service", "scope") if challenge.get(key)}
        reply = self._send("GET", realm, {}, params)
        if reply.status != 200:
            raise TransportError(f"token service {realm} answered HTTP {reply.status} for {params}")
        value, lifetime = _read_token(reply.body, realm)
        with self._lock:
            # Expire early so that a token never runs out between the check and the registry's answer.
            self._tokens[(host, scope)] = _CachedToken(value, self._clock() + lifetime * 0.9)
        return value

    def _send(
        self, method: str, url: str, headers: Mapping[str, str], params: Mapping[str, str] | None = None
    ) -> Reply:
        netloc = urlsplit(url).netloc
        self._check_not_down(netloc, method, url)
        bucket = self._bucket(netloc)
        waited = 0.0
        retry_after: float | None = None
        for attempt in range(1, self._retry.max_attempts + 1):
            bucket.acquire()
            self._count()
            reply: Reply | None = None
            try:
                reply = self._once(method, url, headers, params, attempt)
                if reply.status not in RETRYABLE_STATUSES:
                    with self._lock:
                        self._down_until.pop(netloc, None)
                    return reply
                failure = f"HTTP {reply.status}"
            except requests.RequestException as error:
                failure = f"{type(error).__name__}: {error}"
            retry_after = parse_retry_after(reply.headers.get("Retry-After") if reply else None)
            if attempt == self._retry.max_attempts:
                break
            delay = self._retry.delay(attempt, retry_after)
            if waited + delay > self._retry.max_total_delay:
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
        self, method: str, url: str, headers: Mapping[str, str], params: Mapping[str, str] | None, attempt: int
    ) -> Reply:
        with self._session().request(
            method,
            url,
            headers=dict(headers),
            params=params,
            timeout=(self._timeout, self._timeout),
            allow_redirects=False,
            stream=True,
        ) as response:
            body = _read_capped(response, f"{method} {url}")
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


def _read_capped(response: requests.Response, what: str) -> bytes:
    body = bytearray()
    for chunk in response.iter_content(chunk_size=64 * 1024):
        body += chunk
        if len(body) > MAX_BODY:
            raise TransportError(f"{what}: the response is larger than {MAX_BODY} bytes, too large for a manifest")
    return bytes(body)


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
