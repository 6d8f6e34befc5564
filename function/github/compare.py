"""The order guard of ``sync_index``: a commit replaces the published one only when k8s.io's history
says it comes after it, never by comparing commit times.

Commit times are whatever the committer's clock said: two merges can share a second, and one commit
dated 2030 would make every later commit look older. So the guard asks ``AUDITOR_COMPARE_URL``, read in
the format of GitHub's "Compare two commits" endpoint, ``GET /repos/{owner}/{repo}/compare/{base}...{head}``
(https://docs.github.com/en/rest/commits/commits#compare-two-commits), from the published commit (base)
to the rebuilt one (head). Its ``status`` is ``ahead`` (head contains base: publish), ``identical``
(publish: it changes nothing but what was built), ``behind`` (a replayed or late push of an older
commit: refused) or ``diverged`` (neither contains the other: a force-push or another branch; refused,
and an ERROR line names both commits). When the answer cannot be had, nothing is published: the error is
retryable, so the request answers 503 or the queued rebuild is delivered again.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import quote

from function.errors import Retryable
from function.github import api
from function.github.webhook import is_commit_sha
from function.index.digests import Source
from function.index.publish import Diverged, Refused, Superseded

log = logging.getLogger(__name__)

AHEAD, IDENTICAL, BEHIND, DIVERGED = "ahead", "identical", "behind", "diverged"
STATUSES = frozenset({AHEAD, IDENTICAL, BEHIND, DIVERGED})
# GitHub lists up to 250 commits and 300 files (with their patches) in a comparison; only ``status`` is read.
MAX_ANSWER_BYTES = 32 * 1024 * 1024


class CompareError(Retryable):
    """The order of two commits could not be had (a fault: nothing is published, the sync is tried again)."""


def status(template: str, base: str, head: str, *, token: str | None = None) -> str:
    """GitHub's ``status`` of ``head`` compared with ``base``."""
    url = template.format(base=quote(base, safe=""), head=quote(head, safe=""))
    document = api.get(url, token=token, error=CompareError, max_bytes=MAX_ANSWER_BYTES)
    answered = document.get("status")
    if answered not in STATUSES:
        raise CompareError(f"{url} answered no 'status' of {', '.join(sorted(STATUSES))}: {str(answered)[:40]!r}")
    return str(answered)


class History:
    """The order guard (``function.index.publish.OrderGuard``) of one compare endpoint.

    The order of two commits never changes, so each pair is asked once per instance: a rebuild that
    re-reads the store after a concurrent publication asks again only about the new commit."""

    def __init__(self, template: str, token: str | None = None) -> None:
        self.template = template
        self.token = token
        self._known: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def __call__(self, published: Source, rebuilt: Source) -> None:
        base, head = published.commit, rebuilt.commit
        if not is_commit_sha(base):
            # Built by hand without a commit: there is nothing to place it in history, and the rebuilt
            # commit, once recorded, arms the guard.
            log.warning("the published index records no commit SHA (%r); %s replaces it unasked", base, head)
            return
        if head == base:
            return  # identical, without spending a request of GitHub's hourly allowance
        if not is_commit_sha(head):
            raise Refused(f"{head!r} is not a commit SHA, so it cannot be placed after {base}; the index is kept")
        found = self.status(base, head)
        if found in (AHEAD, IDENTICAL):
            return
        if found == BEHIND:
            raise Superseded(
                f"the published index is from a newer commit, {base}, which already contains {head} "
                f"({self.template.format(base=base, head=head)} answers 'behind'); it is kept"
            )
        raise Diverged(
            f"commit {head} has diverged from {base}, the commit of the published index: neither contains the "
            "other (was the branch force-pushed?); the index is kept. See the runbook: 'sync refused: diverged'"
        )

    def status(self, base: str, head: str) -> str:
        with self._lock:
            known = self._known.get((base, head))
        if known is None:
            known = status(self.template, base, head, token=self.token)
            with self._lock:
                self._known[(base, head)] = known
        return known
