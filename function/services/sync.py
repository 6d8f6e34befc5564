"""The ``sync_index`` Cloud Function: a verified k8s.io push (or a resync) in, a rebuilt, published index out.

Three kinds of request arrive:

- a GitHub push webhook (``X-GitHub-Event: push``, signed in ``X-Hub-Signature-256``): its ``after``
  commit is rebuilt;
- a resync (no ``X-GitHub-Event``; Cloud Scheduler with an ID token, or an operator signing it with the
  webhook secret as the contract has it): the branch head is first pinned to a SHA and its committer time
  through ``AUDITOR_HEAD_URL``, and exactly that commit is rebuilt, so a resync can never move the index
  to another commit than the one it names;
- a Pub/Sub push envelope carrying a rebuild request that a ``sync_index`` with ``AUDITOR_SYNC_QUEUE``
  queued: it is rebuilt here, never queued again.

No Google resource holds the webhook secret: what Google sends (Cloud Scheduler's resync, Pub/Sub's
queued rebuilds) carries a Google-signed ID token of an account in ``AUDITOR_OIDC_INVOKERS`` for
``AUDITOR_OIDC_AUDIENCE`` (``function.services.oidc``). A request with neither a valid signature nor such a
token is refused, because nothing else can prove who sent it, and a resync anyone could trigger would
spend GitHub's API quota and the rebuilds' capacity. A queued rebuild is let in by a token only.

Every accepted commit is recorded as pending before anything is rebuilt (the auditor holds back alarms
while the index is behind it). Without a queue the rebuild runs inside the request: 200 published or
unchanged, 409 refused, and a failure by its kind (``function.errors``: 503 for a fault, 500 for a set-up
to fix). With one, a webhook or resync is answered 202 once its rebuild
request is queued, and the delivery of that request rebuilds: 2xx acknowledges it (a refusal too, as
asking again cannot change it), a failure makes Pub/Sub deliver it again. Each outcome writes one structured
line with the key ``sync`` (published, unchanged, refused, failed, queued) and the ``commit``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import orjson

from function import verdict as v
from function.errors import AuditorError, kind
from function.github import checkout, head, queue, webhook
from function.github.queue import RebuildRequest, SyncQueue
from function.index.digests import Source
from function.index.pending import PendingCommits
from function.index.publish import Published, Refused, Round, Superseded, rebuild
from function.registry.client import RegistryClient
from function.services import oidc
from function.services.response import Response
from function.settings import (
    DEFAULT_BRANCH,
    DEFAULT_HEAD_URL,
    DEFAULT_MANIFESTS,
    DEFAULT_SUBDIR,
    Oidc,
    Settings,
)
from function.storage.base import Confirmation, IndexStore
from function.storage.errors import StoreError
from function.storage.uri import open_store

log = logging.getLogger(__name__)

# Resolution rounds stop after this long, well inside the function's 540 s timeout; what is left is
# queued as a follow-up rebuild (or waits for the next resync without a queue).
RESOLUTION_BUDGET_SECONDS = 300.0

PUBLISHED, UNCHANGED, REFUSED, FAILED, QUEUED = "published", "unchanged", "refused", "failed", "queued"
# A failure answers by the kind of its error instead.
_STATUS = {PUBLISHED: 200, UNCHANGED: 200, REFUSED: 409, QUEUED: 202}


class Headers(Protocol):
    """Request headers with case-insensitive lookup (flask's ``Headers``)."""

    def get(self, key: str) -> str | None: ...


class SyncService:
    def __init__(
        self,
        store: IndexStore,
        *,
        secret: str | None,
        manifests: str = DEFAULT_MANIFESTS,
        subdir: str = DEFAULT_SUBDIR,
        branch: str = DEFAULT_BRANCH,
        head_url: str = DEFAULT_HEAD_URL,
        sync_queue: SyncQueue | None = None,
        invokers: Oidc | None = None,
        registry_factory: Callable[[frozenset[str]], Any] | None = RegistryClient,
        budget_seconds: float = RESOLUTION_BUDGET_SECONDS,
        logger: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.pending = PendingCommits.beside(store)
        self.secret = secret
        self.manifests = manifests
        self.subdir = subdir
        self.branch = branch
        self.head_url = head_url
        self.queue = sync_queue
        self.invokers = invokers
        self.registry_factory = registry_factory
        self.budget_seconds = budget_seconds
        self.logger = logger or v.verdict_logger()
        # One rebuild at a time per instance; concurrent instances are serialised by the store's generations.
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> SyncService:
        settings = Settings.from_environment()
        if settings.oidc is None:
            log.warning("%s", oidc.UNCONFIGURED)
        return cls(
            open_store(settings.required_index_uri()),
            secret=settings.webhook_secret,
            manifests=settings.manifests,
            subdir=settings.manifests_subdir,
            branch=settings.branch,
            head_url=settings.head_url,
            sync_queue=SyncQueue(settings.sync_queue) if settings.sync_queue else None,
            invokers=settings.oidc,
        )

    def handle(self, method: str, headers: Headers, body: bytes) -> Response:
        kind = headers.get("X-GitHub-Event")
        if kind is None and headers.get("X-Hub-Signature-256") is None:
            return self._from_google(method, headers, body)
        if not webhook.verify(self.secret, body, headers.get("X-Hub-Signature-256")):
            log.warning("sync request refused: missing or invalid X-Hub-Signature-256")
            return Response(401, {"status": "refused", "reason": "missing or invalid X-Hub-Signature-256"})
        if method != "POST":
            return Response(405, {"status": "refused", "reason": "POST a GitHub push webhook"})
        if kind is None:
            # The contract's resync, signed with the webhook secret: an operator's, by hand. Terraform's
            # scheduler sends an ID token instead, so that no signature sits in its job's state.
            log.info("resync requested with the webhook secret's signature")
            return self._resync()
        if kind == "ping":
            return Response(200, {"status": "ok", "reason": "pong"})
        if kind != "push":
            return Response(202, {"status": "ignored", "reason": f"GitHub event {kind!r} is not a push"})
        try:
            push = webhook.parse_push(orjson.loads(body) if body else {}, self.subdir)
        except orjson.JSONDecodeError as error:
            reason = f"push payload is not JSON ({error}): set the webhook's content type to application/json"
            return Response(400, {"status": "refused", "reason": reason})
        except webhook.BadRequest as error:
            return Response(400, {"status": "refused", "reason": str(error)})
        if push.ref != f"refs/heads/{self.branch}":
            return Response(202, {"status": "ignored", "reason": f"push to {push.ref}, not {self.branch}"})
        if push.deleted:
            return Response(202, {"status": "ignored", "reason": f"{push.ref} was deleted"})
        if not push.touches_manifests:
            return Response(202, {"status": "ignored", "reason": "the push touches no manifest"})
        return self._accept(RebuildRequest(push.sha, push.committed_at, "push"))

    def _from_google(self, method: str, headers: Headers, body: bytes) -> Response:
        """A resync (Cloud Scheduler) or a queued rebuild (a Pub/Sub push), each with an invoker's ID token."""
        try:
            invoker = oidc.verify(self.invokers, headers.get("Authorization"))
        except oidc.Unauthenticated as error:
            # Why, for the operator; the caller learns nothing it could adjust a forgery to.
            log.warning("sync request refused: %s", error)
            return Response(401, {"status": "refused", "reason": "unauthenticated"})
        except oidc.KeysUnavailable as error:
            log.error("sync request not served: %s", error)
            return Response(503, {"status": "failed", "reason": "the caller's token could not be checked yet"})
        if method != "POST":
            return Response(405, {"status": "refused", "reason": "POST a resync request or a Pub/Sub push"})
        document = _json_or_none(body)
        if queue.is_envelope(document):
            return self._delivered(document, invoker)
        log.info("resync requested by %s", invoker)
        return self._resync()

    # --- accepting a commit ---------------------------------------------------------------------

    def _resync(self) -> Response:
        # Naming a commit in the request is not offered: a replayed signed body could roll the index back.
        try:
            pinned = head.pin(self.head_url, self.branch)
        except head.HeadError as error:
            return self._failed(self.branch, f"pinning the head of {self.branch} failed: {error}", error)
        log.info("resync: %s is at %s (%s)", self.branch, pinned.sha, pinned.committed_at)
        return self._accept(RebuildRequest(pinned.sha, pinned.committed_at, "resync"))

    def _accept(self, request: RebuildRequest) -> Response:
        """Record the commit as pending, then rebuild it here or queue its rebuild."""
        try:
            self.pending.record(request.commit, request.committed_at)
        except StoreError as error:
            return self._failed(request.commit, f"recording the commit as pending failed: {error}", error)
        if self.queue is None:
            return self._rebuild(request)
        return self._enqueue(request)

    def _enqueue(self, request: RebuildRequest) -> Response:
        assert self.queue is not None
        try:
            message_id = self.queue.publish(request)
        except queue.QueueError as error:
            return self._failed(request.commit, str(error), error)
        return self._outcome(
            QUEUED, request.commit, f"rebuild of {request.commit} ({request.reason}) queued", message_id=message_id
        )

    def _delivered(self, document: Any, invoker: str) -> Response:
        try:
            request, message_id = queue.delivered(document)
        except queue.BadDelivery as error:
            # Only sync_index queues requests: this one cannot get better, so Pub/Sub dead-letters it.
            log.warning("queued rebuild refused: %s", error)
            return Response(400, {"status": "refused", "reason": str(error)})
        log.info("queued rebuild of %s (%s), message %s from %s", request.commit, request.reason, message_id, invoker)
        response = self._rebuild(request)
        if response.status == _STATUS[REFUSED]:
            # Acknowledged: delivering it again cannot change the answer.
            return Response(200, response.body)
        return response

    # --- rebuilding -----------------------------------------------------------------------------

    def _rebuild(self, request: RebuildRequest) -> Response:
        with self._lock, checkout.temporary_folder() as scratch:
            source = Source(request.commit, request.committed_at)
            try:
                if "://" in self.manifests:
                    url = self.manifests.format(sha=request.commit)
                    root = checkout.download(url, self.subdir, Path(scratch))
                    source = Source(source.commit, source.committed_at, url)
                else:
                    root = checkout.local_root(self.manifests, self.subdir)
                    source = Source(source.commit, source.committed_at, str(root))
                published = rebuild(
                    root,
                    self.store,
                    source=source,
                    registry_factory=self.registry_factory,
                    budget_seconds=self.budget_seconds,
                    progress=lambda done: self._progress(request.commit, done),
                )
            except Superseded as error:
                self._clear(source)  # the published index already holds something newer than this commit
                return self._outcome(REFUSED, request.commit, str(error))
            except Refused as error:
                return self._outcome(REFUSED, request.commit, str(error))
            except (checkout.CheckoutError, StoreError) as error:
                return self._failed(request.commit, str(error), error)
        self._clear(source)
        if not published.changed:
            self._confirm(request.commit, published.generation)
        if published.remaining and self.queue is not None:
            self._enqueue(RebuildRequest(request.commit, request.committed_at, "continue resolution"))
        return self._published(request.commit, published)

    def _published(self, commit: str, published: Published) -> Response:
        status = PUBLISHED if published.changed else UNCHANGED
        return self._outcome(
            status,
            commit,
            published.line(),
            generation=published.generation,
            counts=published.index.counts(),
        )

    def _clear(self, rebuilt: Source) -> None:
        """Drop the pending records that ``rebuilt`` makes obsolete; a fault leaves them for the next sync."""
        try:
            self.pending.clear(rebuilt)
        except StoreError as error:
            log.warning("pending commits up to %s stay recorded: %s", rebuilt.commit, error)

    def _confirm(self, commit: str, generation: int) -> None:
        """Record that the stored generation is current, so `stats --max-age` does not call the index of a
        quiet branch stale; a fault only leaves the age counted from the last publication."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        try:
            self.store.confirm(Confirmation(generation, now, commit))
        except StoreError as error:
            log.warning(
                "the index stays unconfirmed by %s (stats --max-age counts from its last publication): %s",
                commit,
                error,
            )

    def _progress(self, commit: str, done: Round) -> None:
        level = logging.WARNING if done.summary.failed else logging.INFO
        v.report(
            self.logger,
            level,
            f"sync of {commit}: {done.line()}",
            commit=commit,
            resolution={
                "round": done.number,
                "resolved": done.summary.resolved,
                "not_found": done.summary.not_found,
                "failed": done.summary.failed,
                "remaining": done.remaining,
                "generation": done.generation,
                "errors": done.summary.errors[:5],
            },
        )

    def _outcome(self, status: str, commit: str, message: str, **fields: Any) -> Response:
        """The structured ``sync`` line of this outcome, and the answer to the request."""
        return self._answer(_STATUS[status], status, commit, message, **fields)

    def _failed(self, commit: str, message: str, error: AuditorError) -> Response:
        """A failure: the ``sync`` line, and the status of the error's kind."""
        return self._answer(kind(error).http_status, FAILED, commit, message)

    def _answer(self, http_status: int, status: str, commit: str, message: str, **fields: Any) -> Response:
        report_outcome(self.logger, status, commit, message, **fields)
        key = "reason" if status in (REFUSED, FAILED) else "message"
        return Response(http_status, {"status": status, "commit": commit, key: message, **fields})


def report_outcome(logger: logging.Logger, status: str, commit: str, message: str, **fields: Any) -> None:
    """The ``sync`` line the index-freshness alert counts (published and unchanged prove a fresh index)."""
    level = logging.ERROR if status in (REFUSED, FAILED) else logging.INFO
    line_fields = {k: fields[k] for k in ("generation", "message_id") if k in fields}
    v.report(logger, level, f"sync of {commit} {status}: {message}", sync=status, commit=commit, **line_fields)


def _json_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
