"""The ``audit`` Cloud Function: per-instance state and the handling of one Pub/Sub delivery.

``AuditService`` keeps the index in memory for the instance's life. It checks the store for a newer
generation (one metadata call) every ``AUDITOR_REFRESH_SECONDS`` whatever the verdicts, and before
anything would be rejected at most once a second; a would-be REJECTED also waits while the index is
behind a commit that ``sync_index`` accepted within ``AUDITOR_PENDING_GRACE_SECONDS`` (see freshness.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from function import verdict as v
from function.auditor import Auditor
from function.deadline import DEFAULT_SECONDS, Clock, Deadline
from function.errors import Retryable
from function.events import MalformedEvent, unwrap_pubsub
from function.index.freshness import IndexWatch, PendingWatch, WatchedIndex
from function.index.pending import PendingCommits
from function.index.source import IndexUnavailable
from function.reference import normalize_prefix
from function.registry.client import RegistryClient
from function.rules import malformed
from function.settings import DEFAULT_GRACE_SECONDS, DEFAULT_PARENT_WAIT_SECONDS, DEFAULT_REFRESH_SECONDS, Settings
from function.signatures import SigningPolicy
from function.storage.base import IndexStore
from function.storage.uri import open_store
from function.verdict import Verdict

log = logging.getLogger(__name__)


class RetryLater(Retryable):
    """Raised out of the function so that Pub/Sub redelivers the message."""


class AuditService:
    def __init__(
        self,
        store: IndexStore,
        *,
        registry_factory: Callable[[frozenset[str]], Any] = RegistryClient,
        logger: logging.Logger | None = None,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        frozen_prefixes: Iterable[str] = (),
        deadline_seconds: float = DEFAULT_SECONDS,
        parent_wait_seconds: float = DEFAULT_PARENT_WAIT_SECONDS,
        signing: SigningPolicy | None = None,
    ) -> None:
        self.store = store
        self.signing = signing
        self.registry_factory = registry_factory
        self.logger = logger or v.verdict_logger()
        self.frozen_prefixes = tuple(normalize_prefix(prefix) for prefix in frozen_prefixes)
        self.deadline_seconds = deadline_seconds
        self.parent_wait_seconds = parent_wait_seconds
        self.clock = clock
        self.wall = wall
        self.index = WatchedIndex(
            IndexWatch(store, refresh_seconds=refresh_seconds, clock=clock, logger=self.logger),
            PendingWatch(
                PendingCommits.beside(store, wall=wall),
                grace_seconds=grace_seconds,
                refresh_seconds=refresh_seconds,
                clock=clock,
                wall=wall,
                logger=self.logger,
            ),
        )
        self._auditor: Auditor | None = None
        self._hosts: frozenset[str] = frozenset()
        # Decisions are serialized per instance, so that one registry client's call count is one decision's.
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> AuditService:
        settings = Settings.from_environment()
        deadline = settings.deadline_seconds
        # Cloud Storage's own retries are bounded so that a read leaves the decision time to finish.
        store = open_store(settings.required_index_uri(), timeout=deadline / 3, retry_timeout=deadline / 3)
        return cls(
            store,
            refresh_seconds=settings.refresh_seconds,
            grace_seconds=settings.pending_grace_seconds,
            frozen_prefixes=settings.frozen_prefixes,
            deadline_seconds=deadline,
            parent_wait_seconds=settings.parent_wait_seconds,
            signing=SigningPolicy.from_settings(settings),
        )

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
                    verdict = self._decide(delivery.data, deadline, delivery.published_at)
                finally:
                    self._lock.release()
            else:
                verdict = self._auditor_for(self._hosts).left_open(
                    delivery.data,
                    "deadline exceeded",
                    "The decision's deadline passed while another message was being decided on this instance; "
                    "the message will be redelivered.",
                )
        except MalformedEvent as error:
            verdict = malformed(error)
        v.emit(self.logger, verdict, labels=dict(labels) if labels else None, message_id=message_id)
        if verdict.verdict == v.Kind.RETRY:
            raise RetryLater(verdict.message)
        return verdict

    def _decide(self, data: bytes, deadline: Deadline, published_at: float | None) -> Verdict:
        try:
            index = self.index.current(deadline)
        except IndexUnavailable as error:
            message = f"No index to decide with, the message will be redelivered: {error}"
            return self._auditor_for(self._hosts).left_open(data, error.reason, message)
        # A list not yet pushed is waited for from the message's publication (from now where Pub/Sub gave
        # no publishTime), so that redeliveries do not restart the wait.
        return self._auditor_for(index.registry_hosts()).audit_payload(
            data, deadline=deadline, published_at=published_at
        )

    def _auditor_for(self, hosts: frozenset[str]) -> Auditor:
        """The auditor, with a registry client allowed exactly the hosts of the index: a new destination
        region in a newer index gets a client that may contact it. What was learned is kept."""
        if self._auditor is None or hosts != self._hosts:
            self._hosts = hosts
            self._auditor = Auditor(
                self.index,
                self.registry_factory(hosts),
                learned=self._auditor.learned if self._auditor is not None else None,
                frozen_prefixes=self.frozen_prefixes,
                deadline_seconds=self.deadline_seconds,
                clock=self.clock,
                parent_wait_seconds=self.parent_wait_seconds,
                wall=self.wall,
                signing=self.signing,
            )
        return self._auditor
