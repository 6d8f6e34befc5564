"""The ``audit`` Cloud Function: per-instance state and the handling of one Pub/Sub delivery.

``AuditService`` keeps the index in memory for the instance's life and, before anything would be
rejected, asks the store (one metadata call) whether a newer index was published.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from function import verdict as v
from function.auditor import Auditor, Undecided, malformed, without_index
from function.events import MalformedEvent, unwrap_pubsub
from function.index.digests import DigestIndex, InvalidIndex
from function.index.store import IndexStore, StoreError, open_store
from function.registry.client import RegistryClient
from function.services.config import setting
from function.verdict import Verdict

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """Raised out of the function so that Pub/Sub redelivers the message."""


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
        return cls(open_store(setting("AUDITOR_INDEX_URI")))

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
        index = DigestIndex.from_json(stored.data)
        index.generation = stored.generation
        return index, stored.generation

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
