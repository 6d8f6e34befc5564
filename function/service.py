"""The two Cloud Functions behind ``main.py``: per-instance state and request handling.

``AuditService`` keeps the index in memory for the instance's life and, before anything would be
rejected, asks the store (one metadata call) whether a newer index was published. ``SyncService``
turns a verified k8s.io push into a rebuilt, published index.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from function import checkout, webhook
from function import verdict as v
from function.auditor import Auditor, Undecided, malformed, without_index
from function.events import MalformedEvent, unwrap_pubsub
from function.index import DigestIndex, InvalidIndex, Source
from function.registry import RegistryClient
from function.store import IndexStore, StoreError, open_store
from function.sync import Refused, rebuild
from function.verdict import Verdict

log = logging.getLogger(__name__)

DEFAULT_MANIFESTS = "https://github.com/kubernetes/k8s.io/archive/{sha}.tar.gz"
DEFAULT_SUBDIR = "registry.k8s.io"
DEFAULT_BRANCH = "main"


class Headers(Protocol):
    """Request headers with case-insensitive lookup (flask's ``Headers``)."""

    def get(self, key: str) -> str | None: ...


class RetryLater(Exception):
    """Raised out of the function so that Pub/Sub redelivers the message."""


def _setting(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        raise RuntimeError(f"{name} is not set: see the configuration table in the README")
    return value


class AuditService:
    def __init__(
        self,
        store: IndexStore,
        *,
        registry_factory: Callable[[frozenset[str]], Any] = RegistryClient,
        logger: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.registry_factory = registry_factory
        self.logger = logger or v.verdict_logger()
        self._auditor: Auditor | None = None
        self._generation: int | None = None
        self._hosts: frozenset[str] = frozenset()
        # functions-framework may run requests on several threads; the auditor's caches are not shared-safe.
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> AuditService:
        return cls(open_store(_setting("AUDITOR_INDEX_URI")))

    def handle(self, body: Any, *, labels: Mapping[str, str] | None = None) -> Verdict:
        """Decide one delivery and write its verdict line; raises RetryLater for RETRY."""
        message_id = None
        try:
            delivery = unwrap_pubsub(body)
            message_id = delivery.message_id
            with self._lock:
                try:
                    auditor = self._auditor_or_load()
                except (Undecided, StoreError, InvalidIndex) as error:
                    verdict = without_index(delivery.data, str(error))
                else:
                    verdict = auditor.audit_payload(delivery.data)
        except MalformedEvent as error:
            verdict = malformed(error)
        v.emit(self.logger, verdict, labels=dict(labels) if labels else None, message_id=message_id)
        if verdict.verdict == v.RETRY:
            raise RetryLater(verdict.message)
        return verdict

    def _auditor_or_load(self) -> Auditor:
        if self._auditor is None:
            index, generation = self._read()
            self._auditor = Auditor(index, self._registry(index), refresh=self._refresh)
            self._generation = generation
        return self._auditor

    def _read(self) -> tuple[DigestIndex, int]:
        stored = self.store.read()
        if stored is None:
            raise Undecided("no index", f"no digest index at {self.store.uri} yet: run sync_index or build-index")
        return DigestIndex.from_json(stored.data), stored.generation

    def _registry(self, index: DigestIndex) -> Any:
        hosts = index.registry_hosts()
        if self._auditor is None or hosts != self._hosts:
            self._hosts = hosts
            return self.registry_factory(hosts)
        return self._auditor.registry

    def _refresh(self) -> DigestIndex | None:
        """A newer published index, or None; faults leave the decision open."""
        try:
            generation = self.store.generation()
            if generation is None or generation == self._generation:
                return None
            index, generation = self._read()
        except (StoreError, InvalidIndex) as error:
            raise Undecided(
                "index unavailable", f"checking {self.store.uri} for a newer index failed: {error}"
            ) from None
        assert self._auditor is not None
        # What this instance resolved on misses is as true in the new index as in the old one.
        index.adopt(self._auditor.index)
        self._auditor.registry = self._registry(index)
        self._generation = generation
        log.info("loaded index generation %s (%s)", generation, index.source.commit)
        return index


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: dict[str, Any]

    def flask(self) -> tuple[bytes, int, dict[str, str]]:
        return orjson.dumps(self.body), self.status, {"Content-Type": "application/json"}


class SyncService:
    def __init__(
        self,
        store: IndexStore,
        *,
        secret: str | None,
        manifests: str = DEFAULT_MANIFESTS,
        subdir: str = DEFAULT_SUBDIR,
        branch: str = DEFAULT_BRANCH,
        registry_factory: Callable[[frozenset[str]], Any] | None = RegistryClient,
    ) -> None:
        self.store = store
        self.secret = secret
        self.manifests = manifests
        self.subdir = subdir
        self.branch = branch
        self.registry_factory = registry_factory
        # One rebuild at a time per instance; concurrent instances are serialised by the store's generations.
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> SyncService:
        return cls(
            open_store(_setting("AUDITOR_INDEX_URI")),
            secret=os.environ.get("AUDITOR_WEBHOOK_SECRET"),
            manifests=_setting("AUDITOR_MANIFESTS", DEFAULT_MANIFESTS),
            # Empty means the tarball holds images/ and manifests/ at its top.
            subdir=os.environ.get("AUDITOR_MANIFESTS_SUBDIR", DEFAULT_SUBDIR),
            branch=_setting("AUDITOR_BRANCH", DEFAULT_BRANCH),
        )

    def handle(self, method: str, headers: Headers, body: bytes) -> Response:
        if not webhook.verify(self.secret, body, headers.get("X-Hub-Signature-256")):
            log.warning("sync request refused: missing or invalid X-Hub-Signature-256")
            return Response(401, {"status": "refused", "reason": "missing or invalid X-Hub-Signature-256"})
        if method != "POST":
            return Response(405, {"status": "refused", "reason": "POST a GitHub push webhook or a resync request"})
        kind = headers.get("X-GitHub-Event")
        if kind == "ping":
            return Response(200, {"status": "ok", "reason": "pong"})
        try:
            document = orjson.loads(body) if body else {}
            if kind == "push":
                push = webhook.parse_push(document, self.subdir)
                if push.ref != f"refs/heads/{self.branch}":
                    return Response(202, {"status": "ignored", "reason": f"push to {push.ref}, not {self.branch}"})
                if push.deleted:
                    return Response(202, {"status": "ignored", "reason": f"{push.ref} was deleted"})
                if not push.touches_manifests:
                    return Response(202, {"status": "ignored", "reason": "the push touches no manifest"})
                source = Source(commit=push.sha, committed_at=push.committed_at)
            elif kind is None:
                # A periodic resync (Cloud Scheduler): always the branch head. Naming a commit is not
                # offered, since a replayed signed body could then roll the index back.
                source = Source(commit=self.branch)
            else:
                return Response(202, {"status": "ignored", "reason": f"GitHub event {kind!r} is not a push"})
        except (orjson.JSONDecodeError, webhook.BadRequest) as error:
            return Response(400, {"status": "refused", "reason": str(error)})
        with self._lock:
            return self._rebuild(source)

    def _rebuild(self, source: Source) -> Response:
        commit = source.commit or self.branch
        with checkout.temporary_folder() as scratch:
            try:
                if "://" in self.manifests:
                    url = self.manifests.format(sha=commit)
                    root = checkout.download(url, self.subdir, Path(scratch))
                    source = Source(source.commit, source.committed_at, url)
                else:
                    root = checkout.local_root(self.manifests, self.subdir)
                    source = Source(source.commit, source.committed_at, str(root))
                published = rebuild(root, self.store, source=source, registry_factory=self.registry_factory)
            except Refused as error:
                log.error("sync of %s refused: %s", commit, error)
                return Response(409, {"status": "refused", "commit": commit, "reason": str(error)})
            except (checkout.CheckoutError, StoreError) as error:
                log.error("sync of %s failed: %s", commit, error)
                return Response(503, {"status": "failed", "commit": commit, "reason": str(error)})
        log.info("sync of %s: %s", commit, published.line())
        body: dict[str, Any] = {
            "status": "published",
            "commit": commit,
            "generation": published.generation,
            "counts": published.index.counts(),
            "message": published.line(),
        }
        return Response(200, body)
