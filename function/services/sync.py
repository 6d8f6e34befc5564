"""The ``sync_index`` Cloud Function: a verified k8s.io push (or a resync) in, a rebuilt, published index out."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from function.index.digests import Source
from function.index.publish import Refused, rebuild
from function.index.store import IndexStore, StoreError, open_store
from function.registry.client import RegistryClient
from function.services import checkout, webhook
from function.services.config import setting

log = logging.getLogger(__name__)

DEFAULT_MANIFESTS = "https://github.com/kubernetes/k8s.io/archive/{sha}.tar.gz"
DEFAULT_SUBDIR = "registry.k8s.io"
DEFAULT_BRANCH = "main"


class Headers(Protocol):
    """Request headers with case-insensitive lookup (flask's ``Headers``)."""

    def get(self, key: str) -> str | None: ...


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
            open_store(setting("AUDITOR_INDEX_URI")),
            secret=os.environ.get("AUDITOR_WEBHOOK_SECRET"),
            manifests=setting("AUDITOR_MANIFESTS", DEFAULT_MANIFESTS),
            # Empty means the tarball holds images/ and manifests/ at its top.
            subdir=os.environ.get("AUDITOR_MANIFESTS_SUBDIR", DEFAULT_SUBDIR),
            branch=setting("AUDITOR_BRANCH", DEFAULT_BRANCH),
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
