"""The ``audit`` Cloud Function: per-instance state and the handling of one Pub/Sub delivery.

``AuditService`` keeps the index in memory for the instance's life and, before anything would be
rejected, asks the store (one metadata call) whether a newer index was published.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from function import verdict as v
from function.auditor import Auditor, Undecided, malformed, undecided, without_index
from function.deadline import DEFAULT_SECONDS, Clock, Deadline
from function.events import MalformedEvent, unwrap_pubsub
from function.index.digests import DigestIndex, InvalidIndex
from function.index.store import IndexStore, StoreError, open_store
from function.reference import normalize_prefix
from function.registry.client import RegistryClient
from function.services.config import deadline_seconds, frozen_prefixes, setting
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
        frozen_prefixes: Iterable[str] = (),
        deadline_seconds: float = DEFAULT_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self.store = store
        self.registry_factory = registry_factory
        self.logger = logger or v.verdict_logger()
        self.frozen_prefixes = tuple(normalize_prefix(prefix) for prefix in frozen_prefixes)
        self.deadline_seconds = deadline_seconds
        self.clock = clock
        self._auditor: Auditor | None = None
        self._generation: int | None = None
        self._hosts: frozenset[str] = frozenset()
        # functions-framework may run requests on several threads; the auditor's caches are not shared-safe.
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> AuditService:
        seconds = deadline_seconds()
        # Cloud Storage's own retries are bounded so that a read leaves the decision time to finish.
        store = open_store(setting("AUDITOR_INDEX_URI"), timeout=seconds / 3, retry_timeout=seconds / 3)
        return cls(store, frozen_prefixes=frozen_prefixes(), deadline_seconds=seconds)

    def handle(self, body: Any, *, labels: Mapping[str, str] | None = None) -> Verdict:
        """Decide one delivery and write its verdict line; raises RetryLater for RETRY."""
        message_id = None
        try:
            delivery = unwrap_pubsub(body)
            message_id = delivery.message_id
            # Counted from here: waiting for another request's decision spends this one's time too.
            deadline = Deadline(self.deadline_seconds, self.clock)
            if self._lock.acquire(timeout=max(0.0, deadline.remaining())):
                try:
                    verdict = self._decide(delivery.data, deadline)
                finally:
                    self._lock.release()
            else:
                verdict = undecided(
                    delivery.data,
                    "deadline exceeded",
                    "The decision's deadline passed while another message was being decided on this instance; "
                    "the message will be redelivered.",
                    frozen_prefixes=self.frozen_prefixes,
                )
        except MalformedEvent as error:
            verdict = malformed(error)
        v.emit(self.logger, verdict, labels=dict(labels) if labels else None, message_id=message_id)
        if verdict.verdict == v.RETRY:
            raise RetryLater(verdict.message)
        return verdict

    def _decide(self, data: bytes, deadline: Deadline) -> Verdict:
        try:
            auditor = self._auditor_or_load()
        except (Undecided, StoreError, InvalidIndex) as error:
            return without_index(data, str(error), frozen_prefixes=self.frozen_prefixes)
        return auditor.audit_payload(data, deadline=deadline)

    def _auditor_or_load(self) -> Auditor:
        if self._auditor is None:
            index, generation = self._read()
            self._auditor = Auditor(
                index,
                self._registry(index),
                refresh=self._refresh,
                frozen_prefixes=self.frozen_prefixes,
                deadline_seconds=self.deadline_seconds,
                clock=self.clock,
            )
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
