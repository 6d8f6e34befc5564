"""GitHub push webhooks from kubernetes/k8s.io: signature check and what a push asks of the sync."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from function.index.manifests import folder_prefixes

# GitHub lists at most this many commits in a push payload; a longer push may touch unlisted files.
GITHUB_COMMIT_LIST_LIMIT = 20


class BadRequest(ValueError):
    """A webhook body that is not a push this sync can act on."""


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str | None, body: bytes, header: str | None) -> bool:
    """Constant-time check; an unconfigured secret verifies nothing."""
    if not secret or not header:
        return False
    return hmac.compare_digest(signature(secret, body), header)


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
