"""Image references as the registries spell them: ``<host>/<repository>`` plus a tag or a digest.

Registry events are untrusted input, so parsing is strict (the OCI distribution grammar) and every
failure is a ``InvalidReference`` whose message says exactly what is wrong.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TypeGuard

DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
# distribution's reference grammar: path components separated by "/", tags of at most 128 characters.
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_COMPONENT_RE = re.compile(_COMPONENT)
REPOSITORY_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
HOST_RE = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?")
# Cosign stores signatures, attestations and SBOMs under a tag derived from the subject's digest.
ARTIFACT_TAG_RE = re.compile(r"sha256-([0-9a-f]{64})\.(sig|att|sbom)")
ARTIFACT_BASIS = {"sig": "signature", "att": "attestation", "sbom": "sbom"}
# Where a registry without the OCI 1.1 referrers API keeps an image index of a digest's referrers.
REFERRERS_TAG_RE = re.compile(r"sha256-([0-9a-f]{64})")
# Docker's limit on a repository name, host included.
MAX_NAME_LENGTH = 255
# A registry's limit on the repository of its API paths, host excluded.
MAX_REPOSITORY_LENGTH = 255


class InvalidReference(ValueError):
    """A reference (or a host, repository, tag or digest of one) that does not follow the distribution
    grammar; where the registry client raises it, nothing was sent."""


@dataclass(frozen=True, slots=True)
class Reference:
    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def path(self) -> str:
        """Host and repository: the key the digest index is organised by."""
        return f"{self.host}/{self.repository}"


def is_digest(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and DIGEST_RE.fullmatch(value) is not None


def is_tag(text: str) -> bool:
    return TAG_RE.fullmatch(text) is not None


def is_loopback(host: str) -> bool:
    """Whether a registry host (with optional port) is on this machine: only those speak plain HTTP."""
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def normalize_host(host: str) -> str:
    """Host names are case-insensitive and ``:443`` is https's own port: one spelling per registry, so
    that ``EU.GCR.IO:443/x`` is audited as ``eu.gcr.io/x`` and cannot slip past the index."""
    host = host.lower()
    if host.endswith(":443") and not is_loopback(host):
        host = host.removesuffix(":443")
    return host


def names_a_host(component: str) -> bool:
    """Whether the first component of a path is a registry host: it has a dot or a port, or is localhost.
    Without this rule "library/nginx" would parse as host "library"."""
    return "." in component or ":" in component or component == "localhost"


# Events name a few thousand repositories over and over: each path is checked once (a third of the
# CLI's time per event went here). Bounded, and an invalid path is not kept (the exception is raised anew).
@functools.lru_cache(maxsize=8192)
def split_path(path: str) -> tuple[str, str]:
    """Split ``host/repository``, validate both parts, and normalize the host."""
    host, sep, repository = path.partition("/")
    if not sep or not repository:
        raise InvalidReference(f"{path!r} has no repository after the registry host")
    host = normalize_host(host)
    if HOST_RE.fullmatch(host) is None:
        raise InvalidReference(f"{host!r} is not a valid registry host")
    if not names_a_host(host):
        raise InvalidReference(f"{host!r} is not a registry host (no dot, port or localhost)")
    if len(path) > MAX_NAME_LENGTH:
        raise InvalidReference(f"repository name is {len(path)} characters long, the limit is {MAX_NAME_LENGTH}")
    for component in repository.split("/"):
        if _COMPONENT_RE.fullmatch(component) is None:
            raise InvalidReference(
                f"repository component {component!r} of {path!r} is not lowercase alphanumerics "
                "joined by '.', '_', '__' or '-'"
            )
    return host, repository


def checked_host(host: str) -> str:
    """A registry host to contact (a name or address and an optional port), in lowercase."""
    normalized = host.lower()
    if not HOST_RE.fullmatch(normalized):
        raise InvalidReference(f"{host!r} is not a registry host (expected a name or address, and an optional port)")
    return normalized


def check_repository(repository: str) -> None:
    """A repository as a registry's API paths name it (host excluded)."""
    if len(repository) > MAX_REPOSITORY_LENGTH or not REPOSITORY_RE.fullmatch(repository):
        raise InvalidReference(f"{repository!r:.300} is not a valid repository name")


def check_manifest_reference(repository: str, reference: str) -> None:
    """A repository and a tag or digest a manifest can be asked at."""
    check_repository(repository)
    if not (is_digest(reference) or is_tag(reference)):
        raise InvalidReference(f"{reference!r:.150} is neither a tag nor a sha256 digest")


def parse_digest_reference(text: str) -> Reference:
    """Parse ``host/repository@sha256:<64 lowercase hex>``."""
    path, sep, digest = text.rpartition("@")
    if not sep:
        raise InvalidReference(f"digest reference {text!r} has no '@'")
    if not is_digest(digest):
        raise InvalidReference(f"{digest!r} is not a digest of the form sha256:<64 lowercase hex>")
    host, repository = split_path(path)
    return Reference(host, repository, digest=digest)


def parse_tag_reference(text: str) -> Reference:
    """Parse ``host/repository:tag`` (a port in the host is not mistaken for a tag)."""
    path, sep, tag = text.rpartition(":")
    if not sep or "/" in tag:
        raise InvalidReference(f"tag reference {text!r} has no ':<tag>' after the repository")
    if not is_tag(tag):
        raise InvalidReference(f"{tag!r} is not a valid tag (1-128 of [A-Za-z0-9_.-], not starting with . or -)")
    host, repository = split_path(path)
    return Reference(host, repository, tag=tag)


def parse_reference(text: str) -> Reference:
    """Parse a reference as people write it: ``host/repository`` with an optional ``:tag`` and an
    optional ``@sha256:<hex>`` (both may be given, as in ``host/pause:3.9@sha256:...``)."""
    named, at, digest = text.rpartition("@") if "@" in text else (text, "", "")
    tagged = ":" in named.rsplit("/", 1)[-1]
    reference = parse_tag_reference(named) if tagged else Reference(*split_path(named))
    if at:
        reference = replace(reference, digest=parse_digest_reference(f"{reference.path}@{digest}").digest)
    return reference


def normalize_prefix(text: str) -> str:
    """A registry path prefix (a host, or a host and leading repository components) spelled as event paths
    are, so that it matches them: ``EU.GCR.IO/k8s-artifacts-prod/`` becomes ``eu.gcr.io/k8s-artifacts-prod``."""
    prefix = text.strip().rstrip("/")
    host, repository = split_path(prefix if "/" in prefix else f"{prefix}/x")
    return f"{host}/{repository}" if "/" in prefix else host


def prefix_over(path: str, prefixes: Iterable[str]) -> str | None:
    """The first of the (normalized) ``prefixes`` that ``path`` is, or lies under; None if none is."""
    return next((p for p in prefixes if path == p or path.startswith(p + "/")), None)


def referrers_subject(tag: str) -> str | None:
    """For the referrers fallback tag ``sha256-<hex>``: the subject digest."""
    match = REFERRERS_TAG_RE.fullmatch(tag)
    return f"sha256:{match.group(1)}" if match is not None else None


def artifact_subject(tag: str) -> tuple[str, str] | None:
    """For a cosign tag ``sha256-<hex>.sig|att|sbom``: the subject digest and the verdict basis."""
    match = ARTIFACT_TAG_RE.fullmatch(tag)
    if match is None:
        return None
    return f"sha256:{match.group(1)}", ARTIFACT_BASIS[match.group(2)]
