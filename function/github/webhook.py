"""GitHub push webhooks from kubernetes/k8s.io: signature check and what a push asks of the sync."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from function.index.manifests import folder_prefixes

COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
# GitHub lists at most this many commits in a push payload; a longer push may touch unlisted files.
GITHUB_COMMIT_LIST_LIMIT = 20


class BadRequest(ValueError):
    """A webhook body that is not a push this sync can act on."""


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str | None, body: bytes, header: str | None) -> bool:
    """Constant-time check; an unconfigured secret verifies nothing, nor does a header that is not ASCII."""
    if not secret or not header:
        return False
    # Compared as bytes: compare_digest refuses non-ASCII text with a TypeError, which is a forgery, not a fault.
    return hmac.compare_digest(signature(secret, body).encode(), header.encode("utf-8", "surrogateescape"))


def is_commit_sha(value: object) -> TypeGuard[str]:
    """A full commit SHA as GitHub writes it: 40 lowercase hex digits (it becomes part of a URL)."""
    return isinstance(value, str) and COMMIT_SHA.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Push:
    ref: str
    sha: str
    committed_at: str | None
    touches_manifests: bool
    deleted: bool = False


def parse_push(document: Any, subdir: str) -> Push:
    """The parts of a GitHub push payload the sync needs."""
    if not isinstance(document, Mapping):
        raise BadRequest("push payload is not a JSON object")
    ref, sha = document.get("ref"), document.get("after")
    if not isinstance(ref, str) or not isinstance(sha, str) or not sha:
        raise BadRequest("push payload has no 'ref' and 'after'")
    if not is_commit_sha(sha):
        raise BadRequest(f"push payload's 'after' is not a commit SHA (40 lowercase hex digits): {sha[:80]!r}")
    head = document.get("head_commit")
    committed_at = head.get("timestamp") if isinstance(head, Mapping) else None
    return Push(
        ref=ref,
        sha=sha,
        committed_at=committed_at if isinstance(committed_at, str) else None,
        touches_manifests=_touches(document.get("commits"), subdir),
        # A deleted branch has no tree to build from.
        deleted=document.get("deleted") is True,
    )


def _touches(commits: Any, subdir: str) -> bool:
    if not isinstance(commits, list) or len(commits) >= GITHUB_COMMIT_LIST_LIMIT:
        return True  # the file lists may be incomplete: assume the manifests changed
    prefixes = folder_prefixes(subdir)
    for commit in commits:
        if not isinstance(commit, Mapping):
            return True
        for key in ("added", "modified", "removed"):
            files = commit.get(key)
            if not isinstance(files, list):
                return True
            if any(isinstance(f, str) and f.startswith(prefixes) for f in files):
                return True
    return False
