"""Pinning the head of the promoted k8s.io branch to one commit, so that a resync rebuilds exactly that.

The answer is read in the format of GitHub's "Get a commit" endpoint,
``GET /repos/{owner}/{repo}/commits/{ref}`` (https://docs.github.com/en/rest/commits/commits#get-a-commit):
a JSON object whose ``sha`` is the commit and whose ``commit.committer.date`` is its committer time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
import requests

from function.errors import Retryable
from function.github.checkout import trusted_url
from function.github.webhook import is_commit_sha
from function.index.pending import commit_time

TIMEOUT_SECONDS = 10.0
# A commit's answer lists its files; nothing about the head needs more than this.
MAX_ANSWER_BYTES = 8 * 1024 * 1024


class HeadError(Retryable):
    """The branch head could not be pinned (a fault: the resync is tried again later)."""


@dataclass(frozen=True, slots=True)
class Head:
    sha: str
    committed_at: str


def pin(template: str, branch: str) -> Head:
    """The commit the branch points at now, with its committer time."""
    url = template.format(branch=quote(branch, safe=""))
    if not trusted_url(url):
        raise HeadError(f"refusing {url}: the branch head is asked over https (http only on loopback)")
    try:
        with requests.get(
            url, headers={"Accept": "application/vnd.github+json"}, timeout=TIMEOUT_SECONDS, stream=True
        ) as response:
            if response.status_code != 200:
                hint = ""
                if response.status_code in (403, 429):
                    # GitHub limits anonymous API calls per source address, which Cloud Run shares.
                    hint = "; GitHub's API may be rate-limiting this address: the next resync tries again"
                raise HeadError(f"GET {url} answered {response.status_code}: {response.text[:200]}{hint}")
            body = response.raw.read(MAX_ANSWER_BYTES + 1, decode_content=True)
    except requests.RequestException as error:
        raise HeadError(f"GET {url} failed: {error}") from None
    if len(body) > MAX_ANSWER_BYTES:
        raise HeadError(f"GET {url} answered more than {MAX_ANSWER_BYTES} bytes")
    return parse(body, url)


def parse(body: bytes, url: str) -> Head:
    """``sha`` and ``commit.committer.date`` of a GitHub commit answer; HeadError for anything else."""
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise HeadError(f"{url} did not answer JSON") from None
    sha = document.get("sha") if isinstance(document, Mapping) else None
    commit = document.get("commit") if isinstance(document, Mapping) else None
    committer = commit.get("committer") if isinstance(commit, Mapping) else None
    date = committer.get("date") if isinstance(committer, Mapping) else None
    if not is_commit_sha(sha) or not isinstance(date, str):
        raise HeadError(f"{url} answered no commit 'sha' (40 lowercase hex) and 'commit.committer.date'")
    try:
        commit_time(date)
    except ValueError:
        raise HeadError(f"{url} answered a committer date that is not ISO 8601: {date[:40]!r}") from None
    return Head(sha, date)
