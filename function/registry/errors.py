"""What a registry client raises, and how a registry's error answer becomes one of them."""

from __future__ import annotations

import json

from function.registry._http import RETRYABLE_STATUSES, Reply

NOT_FOUND_CODES = frozenset({"MANIFEST_UNKNOWN", "NAME_UNKNOWN"})


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


class BlobTooLarge(RegistryError):
    """A blob's descriptor declares more bytes than the caller may read; nothing was sent."""


class HostNotAllowed(RegistryError):
    """The host is not one of the registries this client may contact; nothing was sent."""


def status_error(name: str, reply: Reply) -> RegistryError:
    codes, detail = error_summary(reply.body)
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


def error_summary(body: bytes) -> tuple[frozenset[str], str]:
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
