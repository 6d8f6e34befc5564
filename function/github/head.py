"""Pinning the head of the promoted k8s.io branch to one commit, so that a resync rebuilds exactly that;
and reading a pushed commit's committer time the same way.

The answer is read in the format of GitHub's "Get a commit" endpoint,
``GET /repos/{owner}/{repo}/commits/{ref}`` (https://docs.github.com/en/rest/commits/commits#get-a-commit):
a JSON object whose ``sha`` is the commit and whose ``commit.committer.date`` is its committer time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from function.errors import Retryable
from function.github import api
from function.github.webhook import is_commit_sha
from function.index.pending import commit_time

# A commit's answer lists its files; nothing about the head needs more than this.
MAX_ANSWER_BYTES = 8 * 1024 * 1024


class HeadError(Retryable):
    """The branch head could not be pinned (a fault: the resync is tried again later)."""


@dataclass(frozen=True, slots=True)
class Head:
    sha: str
    committed_at: str


def pin(template: str, ref: str, *, token: str | None = None, timeout: float = api.TIMEOUT_SECONDS) -> Head:
    """The commit ``ref`` (a branch, or a commit SHA: GitHub's endpoint takes any ref) points at now, with
    its committer time."""
    url = template.format(branch=quote(ref, safe=""))
    document = api.get(url, token=token, error=HeadError, max_bytes=MAX_ANSWER_BYTES, timeout=timeout)
    return _head(document, url)


def commit(template: str, sha: str, *, token: str | None = None, timeout: float = api.TIMEOUT_SECONDS) -> Head:
    """Commit ``sha`` with its committer time, through the same endpoint (GitHub's takes a SHA as the ref)."""
    found = pin(template, sha, token=token, timeout=timeout)
    if found.sha != sha:
        raise HeadError(f"{template.format(branch=sha)} answered commit {found.sha}, not {sha}")
    return found


def parse(body: bytes, url: str) -> Head:
    """``sha`` and ``commit.committer.date`` of a GitHub commit answer; HeadError for anything else."""
    return _head(api.json_object(body, url, HeadError), url)


def _head(document: Mapping[str, Any], url: str) -> Head:
    sha, commit = document.get("sha"), document.get("commit")
    committer = commit.get("committer") if isinstance(commit, Mapping) else None
    date = committer.get("date") if isinstance(committer, Mapping) else None
    if not is_commit_sha(sha) or not isinstance(date, str):
        raise HeadError(f"{url} answered no commit 'sha' (40 lowercase hex) and 'commit.committer.date'")
    try:
        commit_time(date)
    except ValueError:
        raise HeadError(f"{url} answered a committer date that is not ISO 8601: {date[:40]!r}") from None
    return Head(sha, date)
