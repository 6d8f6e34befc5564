"""Reads manifests, and pages of listings, from the registries named in the promotion manifests, and from
no other host.

Every answer is verified against its digest. Errors say whether the answer is definitive
(`ManifestNotFound`) or the decision is open (`RegistryUnavailable`: retry later).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urljoin, urlsplit

from function.deadline import Clock, Deadline, Sleep
from function.reference import (
    InvalidReference,
    check_manifest_reference,
    check_repository,
    checked_host,
    is_digest,
    is_tag,
)
from function.registry import content
from function.registry._http import MAX_REQUEST_SECONDS, RETRYABLE_STATUSES, Reply, TransportError, scheme_for

if TYPE_CHECKING:
    import google.auth.credentials

    from function.registry._transport import Transport

    CredentialsFactory = Callable[[], google.auth.credentials.Credentials]

__all__ = [
    "DigestMismatch",
    "HostNotAllowed",
    "JsonPage",
    "ManifestHead",
    "ManifestNotFound",
    "ManifestSource",
    "RegistryClient",
    "RegistryError",
    "RegistryUnavailable",
    "UnreadableManifest",
    "google_default_credentials",
]

NOT_FOUND_CODES = frozenset({"MANIFEST_UNKNOWN", "NAME_UNKNOWN"})
GOOGLE_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def google_default_credentials() -> google.auth.credentials.Credentials:
    """Application Default Credentials: the function's service account in the cloud."""
    import google.auth  # loaded on the first request to a Google registry, see RegistryClient

    credentials, _project = google.auth.default(scopes=[GOOGLE_SCOPE])
    return credentials


class RegistryError(Exception):
    """Base of everything this module raises."""


class ManifestNotFound(RegistryError):
    """The registry answered that it has no such manifest (or repository): a definitive answer."""


class RegistryUnavailable(RegistryError):
    """No trustworthy answer (network, timeout, throttling, server or auth failure): retry later."""


class DigestMismatch(RegistryUnavailable):
    """The bytes served do not hash to the digest they were served as: corruption or tampering."""


class UnreadableManifest(RegistryError):
    """Bytes the registry really serves under that digest are no manifest this auditor can read.

    Raised from `content.InvalidManifest` (its `__cause__`). Not a fault of the transport, and not
    "not found" either: an operator has to look at the manifest.
    """


class HostNotAllowed(RegistryError):
    """The host is not one of the registries this client may contact; nothing was sent."""


@dataclass(frozen=True)
class JsonPage:
    """One page of a registry's JSON listing (`/v2/_catalog`, `/v2/<repository>/tags/list`)."""

    document: Any
    # Path and query of the next page, from the Link header; always on the same host.
    next: str | None


@dataclass(frozen=True)
class ManifestHead:
    """What a HEAD of a manifest says: its digest (None where the registry omits it) and media type."""

    digest: str | None
    media_type: str | None


class ManifestSource(Protocol):
    """What deciding and resolving need of a registry: `RegistryClient`, or a test's stand-in."""

    @property
    def calls(self) -> int: ...

    def get_manifest(
        self, host: str, repository: str, reference: str, *, deadline: Deadline | None = None
    ) -> content.Manifest: ...

    def resolve_tag(self, host: str, repository: str, tag: str, *, deadline: Deadline | None = None) -> str: ...


@dataclass(frozen=True)
class _TransportOptions:
    """What the client's transport is made with, once the first request needs it."""

    timeout: float
    request_seconds: float
    max_attempts: int
    rate_per_host: float
    credentials: CredentialsFactory | None
    sleep: Sleep
    clock: Clock

    def transport(self, allowed_hosts: frozenset[str]) -> Transport:
        from function.registry._throttle import RetryPolicy
        from function.registry._tokens import GoogleTokens
        from function.registry._transport import Transport

        return Transport(
            timeout=self.timeout,
            retry=RetryPolicy(max_attempts=self.max_attempts),
            rate_per_host=self.rate_per_host,
            google_tokens=GoogleTokens(self.credentials),
            sleep=self.sleep,
            clock=self.clock,
            realm_hosts=allowed_hosts,
            request_seconds=self.request_seconds,
        )


class RegistryClient:
    """Manifest reads with verification, retries, rate limiting and auth; safe to share between threads.

    `credentials` makes Google credentials for `gcr.io`, `*.gcr.io` and `*-docker.pkg.dev`, called on
    the first request to such a host only; None reads them anonymously too.
    """

    def __init__(
        self,
        allowed_hosts: Iterable[str],
        *,
        timeout: float = 10.0,
        request_seconds: float = MAX_REQUEST_SECONDS,
        max_attempts: int = 4,
        rate_per_host: float = 80.0,
        credentials: CredentialsFactory | None = google_default_credentials,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self._allowed_hosts = frozenset(checked_host(host) for host in allowed_hosts)
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        self._options = _TransportOptions(
            timeout, request_seconds, max_attempts, rate_per_host, credentials, sleep, clock
        )
        self._made: Transport | None = None
        self._making = threading.Lock()

    @property
    def _transport(self) -> Transport:
        # requests, urllib3 and google-auth load with the first request, not with the client or the
        # importers of the errors and protocols here: an audit the index decides sends none (0.15 s saved).
        made = self._made
        if made is None:
            with self._making:
                if self._made is None:
                    self._made = self._options.transport(self._allowed_hosts)
                made = self._made
        return made

    @property
    def calls(self) -> int:
        """HTTP requests sent so far, retries and token requests included."""
        return 0 if self._made is None else self._made.calls

    def close(self) -> None:
        if self._made is not None:
            self._made.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def get_manifest(
        self, host: str, repository: str, reference: str, *, deadline: Deadline | None = None
    ) -> content.Manifest:
        """The manifest at a tag or `sha256:` digest, verified against that digest.

        Raises ManifestNotFound, RegistryUnavailable (DigestMismatch included), UnreadableManifest,
        or HostNotAllowed (all RegistryError), or reference.InvalidReference.
        """
        host = self._allowed(host)
        check_manifest_reference(repository, reference)
        name = _name(host, repository, reference)
        reply = self._request("GET", host, repository, reference, deadline)
        expected = reference if is_digest(reference) else reply.headers.get("Docker-Content-Digest")
        try:
            # The bytes are checked before anything reads them, whatever the registry calls them.
            digest = content.verified(reply.body, expected if is_digest(expected) else None)
        except content.ContentMismatch as error:
            raise DigestMismatch(
                f"{name}: the registry served bytes that are not {expected} ({error}). The response was "
                "corrupted or tampered with on the way: retry later, and check the network path to the "
                "registry if this persists"
            ) from None
        try:
            return content.parse_manifest(reply.body, reply.headers.get("Content-Type"), digest)
        except content.InvalidManifest as error:
            raise UnreadableManifest(
                f"{name}: the registry serves something that is not a manifest this auditor reads ({error}). "
                "Inspect it, e.g. with `crane manifest`, before deciding on the event"
            ) from error

    def resolve_tag(self, host: str, repository: str, tag: str, *, deadline: Deadline | None = None) -> str:
        """The digest a tag points at, from one HEAD (a GET, hashed, if the registry omits the digest)."""
        host = self._allowed(host)
        check_repository(repository)
        if not is_tag(tag):
            raise InvalidReference(f"{tag!r:.150} is not a valid tag")
        reply = self._request("HEAD", host, repository, tag, deadline)
        digest = reply.headers.get("Docker-Content-Digest")
        if is_digest(digest):
            return digest
        return self.get_manifest(host, repository, tag, deadline=deadline).digest

    def head_manifest(
        self, host: str, repository: str, reference: str, *, deadline: Deadline | None = None
    ) -> ManifestHead:
        """Whether a tag or digest exists, with one HEAD; ManifestNotFound where it does not."""
        host = self._allowed(host)
        check_manifest_reference(repository, reference)
        reply = self._request("HEAD", host, repository, reference, deadline)
        digest = reply.headers.get("Docker-Content-Digest")
        media_type = content.bare_media_type(reply.headers.get("Content-Type")) or None
        return ManifestHead(digest if is_digest(digest) else None, media_type)

    def get_json(self, host: str, path: str, *, scope: str) -> JsonPage:
        """GET one page of a JSON listing at `path` (with its query); ManifestNotFound for an unknown name.

        The next page is taken from a `Link: <...>; rel="next"` header and must stay on this host."""
        host = self._allowed(host)
        name = f"{host}{path}"
        try:
            reply = self._transport.request("GET", host, path, headers={"Accept": "application/json"}, scope=scope)
        except TransportError as error:
            raise RegistryUnavailable(f"{name}: {error}. Retry later") from error
        if reply.status != 200:
            raise _status_error(name, reply)
        try:
            document = json.loads(reply.body)
        except (ValueError, RecursionError):
            raise RegistryUnavailable(
                f"{name}: the registry answered with something that is not JSON; retry later, and report it if "
                "it persists"
            ) from None
        return JsonPage(document, _next_page(host, name, reply.headers.get("Link")))

    def _allowed(self, host: str) -> str:
        normalized = host.lower()
        if normalized not in self._allowed_hosts:
            raise HostNotAllowed(
                f"refusing to contact {host!r:.200}: it is not a registry named in the promotion manifests "
                f"(allowed: {', '.join(sorted(self._allowed_hosts))}); nothing was sent"
            )
        return normalized

    def _request(self, method: str, host: str, repository: str, reference: str, deadline: Deadline | None) -> Reply:
        name = _name(host, repository, reference)
        try:
            reply = self._transport.request(
                method,
                host,
                f"/v2/{repository}/manifests/{reference}",
                headers={"Accept": content.ACCEPT},
                scope=f"repository:{repository}:pull",
                deadline=deadline,
            )
        except TransportError as error:
            raise RegistryUnavailable(f"{name}: {error}. The decision is open: retry later") from error
        if reply.status == 200:
            return reply
        raise _status_error(name, reply)


def _status_error(name: str, reply: Reply) -> RegistryError:
    codes, detail = _error_summary(reply.body)
    said = f"HTTP {reply.status}" + (f" ({detail})" if detail else "")
    if reply.status in (401, 403):
        # Registries answer these for missing repositories too, so that private ones stay secret: a
        # refusal is never taken to mean "not found".
        return RegistryUnavailable(
            f"{name}: access refused with {said}, even after the bearer-token exchange. Check that the "
            "repository is public, or that the service account may read it (roles/artifactregistry.reader)"
        )
    if reply.status in RETRYABLE_STATUSES:
        return RegistryUnavailable(
            f"{name}: the registry answered {said} to all {reply.attempts} attempts. The decision is open: "
            "retry later, and check the registry's status and quota if this persists"
        )
    if reply.status == 404 or (400 <= reply.status < 500 and codes & NOT_FOUND_CODES):
        return ManifestNotFound(f"{name}: not found; the registry answered {said}")
    return RegistryUnavailable(
        f"{name}: unexpected answer {said}. The decision is open: retry later, and report it if it persists"
    )


def _error_summary(body: bytes) -> tuple[frozenset[str], str]:
    """The codes and a short text of a distribution error body (`{"errors": [{"code", "message"}]}`)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return frozenset(), ""
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return frozenset(), ""
    entries = [error for error in errors if isinstance(error, dict)]
    codes = frozenset(str(entry.get("code")) for entry in entries if entry.get("code"))
    detail = "; ".join(f"{entry.get('code')}: {entry.get('message')}" for entry in entries)
    return codes, detail[:300]


def _next_page(host: str, name: str, link: str | None) -> str | None:
    """The path and query of a Link header's next page; a link to another host is refused."""
    from requests.utils import parse_header_links  # loaded with the transport, see RegistryClient

    url = next((page["url"] for page in parse_header_links(link or "") if _is_next(page)), "")
    if not url:
        return None
    base = f"{scheme_for(host)}://{host}/"
    target = urlsplit(urljoin(base, url))
    if target.netloc.lower() != host or not target.path.startswith("/v2/"):
        raise RegistryUnavailable(
            f"{name}: the next page is linked at {url!r:.200}, not on {host}; not followed. "
            "Report this answer to the registry's operators"
        )
    return f"{target.path}?{target.query}" if target.query else target.path


def _is_next(link: dict[str, str]) -> bool:
    # rel holds space-separated relation types, compared case-insensitively (RFC 8288).
    rel = next((value for key, value in link.items() if key.lower() == "rel"), "")
    return "next" in rel.lower().split()


def _name(host: str, repository: str, reference: str) -> str:
    separator = "@" if is_digest(reference) else ":"
    return f"{host}/{repository}{separator}{reference}"
