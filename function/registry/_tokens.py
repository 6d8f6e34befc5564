"""Bearer tokens for registries: the challenge, the anonymous token exchange and its realm check, Google
access tokens for Google's registries, and the cache of tokens per repository."""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import google.auth.credentials
import google.auth.exceptions
import google.auth.transport.requests

from function.bounded import LruCache
from function.deadline import Clock, Deadline, clip
from function.reference import is_loopback
from function.registry._http import TransportError

if TYPE_CHECKING:
    from function.registry.client import CredentialsFactory

log = logging.getLogger(__name__)

DEFAULT_TOKEN_LIFETIME = 60.0
# Bearer tokens are per repository, and an event may name any repository under a destination.
MAX_CACHED_TOKENS = 1024
# google-auth's own default for a token request, before it is clipped to the decision's deadline.
GOOGLE_TOKEN_TIMEOUT = 120.0

_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]*))')


def parse_bearer_challenge(header: str | None) -> dict[str, str] | None:
    """The parameters of a `WWW-Authenticate: Bearer ...` challenge, or None for any other scheme."""
    if not header or not header.lstrip().lower().startswith("bearer "):
        return None
    params = header.lstrip()[len("bearer ") :]
    return {key.lower(): quoted or bare for key, quoted, bare in _CHALLENGE_PARAM.findall(params)}


def check_realm(host: str, realm: str, realm_hosts: frozenset[str]) -> None:
    """A token realm is the registry's own host or another registry of the manifests (``realm_hosts``),
    spoken to over https, or plain http where the registry itself is on loopback: a registry cannot make the
    auditor contact any other host, or send anything in the clear over a network."""
    parts = urlsplit(realm)
    netloc = parts.netloc.lower().removesuffix(":443") if parts.scheme == "https" else parts.netloc.lower()
    in_clear_on_loopback = parts.scheme == "http" and is_loopback(host) and is_loopback(netloc)
    if netloc not in {host, *realm_hosts} or not (parts.scheme == "https" or in_clear_on_loopback):
        raise TransportError(
            f"{host} asked for a token from {realm!r:.200}, which is neither {host} nor another registry "
            "named in the promotion manifests over https (plain http only between loopback hosts); "
            "nothing was sent there. Check the registry's token service (or what answers in its place)"
        )


def read_token(body: bytes, realm: str) -> tuple[str, float]:
    """The token and its lifetime in seconds from a token service's answer."""
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


@dataclass(frozen=True)
class _CachedToken:
    value: str
    expires: float


class TokenCache:
    """Tokens of the registries' token services per host and scope, until shortly before they expire."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._tokens: LruCache[tuple[str, str], _CachedToken] = LruCache(MAX_CACHED_TOKENS)

    def get(self, host: str, scope: str) -> str | None:
        cached = self._tokens.get((host, scope))
        return cached.value if cached is not None and cached.expires > self._clock() else None

    def put(self, host: str, scope: str, value: str, lifetime: float) -> None:
        # Expire early so that a token never runs out between the check and the registry's answer.
        self._tokens.put((host, scope), _CachedToken(value, self._clock() + lifetime * 0.9))


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
