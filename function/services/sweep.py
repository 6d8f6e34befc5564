"""The ``sweep`` Cloud Function (HTTP, for Cloud Scheduler): one sweep per request, the summary as answer.

Finding lines and the summary line go to stdout like the audit's verdict lines; the answer is 200 with the
summary whenever the sweep ran (findings or not: they are alarms of their own), 503 when the index could
not be read (the scheduler's retry runs it again).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from function import verdict as v
from function.index.digests import InvalidIndex
from function.index.publish import read_index
from function.index.store import IndexStore, StoreError, open_store
from function.registry.client import RegistryClient
from function.services.config import frozen_prefixes, setting, signing_policy, sweep_max_seconds
from function.services.response import Response
from function.signatures import SigningPolicy
from function.sweep.runner import DEFAULT_MAX_SECONDS, RegistryFactory, Sweep, report_summary

log = logging.getLogger(__name__)

LABELS = {"function": "sweep"}


class SweepService:
    def __init__(
        self,
        store: IndexStore,
        *,
        registry_factory: RegistryFactory = RegistryClient,
        frozen_prefixes: Sequence[str] = (),
        max_seconds: float = DEFAULT_MAX_SECONDS,
        logger: logging.Logger | None = None,
        signing: SigningPolicy | None = None,
    ) -> None:
        self.store = store
        self.signing = signing
        self.registry_factory = registry_factory
        self.frozen_prefixes = tuple(frozen_prefixes)
        self.max_seconds = max_seconds
        self.logger = logger or v.verdict_logger()
        # One sweep at a time per instance: a second one would only double the registry calls.
        self._running = threading.Lock()

    @classmethod
    def from_environment(cls) -> SweepService:
        return cls(
            open_store(setting("AUDITOR_INDEX_URI")),
            frozen_prefixes=frozen_prefixes(),
            max_seconds=sweep_max_seconds(),
            signing=signing_policy(),
        )

    def handle(self, method: str) -> Response:
        if method != "POST":
            return Response(405, {"status": "refused", "reason": "POST to run a sweep"})
        if not self._running.acquire(blocking=False):
            return Response(409, {"status": "busy", "reason": "a sweep is already running on this instance"})
        try:
            return self._sweep()
        finally:
            self._running.release()

    def _sweep(self) -> Response:
        try:
            index = read_index(self.store)
        except (StoreError, InvalidIndex) as error:
            return _unread(str(error))
        if index is None:
            return _unread(f"no digest index at {self.store.uri} yet: run sync_index or build-index")
        sweep = Sweep(
            index,
            registry_factory=self.registry_factory,
            frozen_prefixes=self.frozen_prefixes,
            max_seconds=self.max_seconds,
            signing=self.signing,
            on_finding=lambda finding: v.emit(self.logger, finding, labels=LABELS),
        )
        result = sweep.run()
        report_summary(self.logger, result.summary)
        fields = result.summary.fields()
        # The summary's fields at the top, and the summary line's own shape (message, sweep) alongside.
        return Response(200, {"status": "swept", **fields, "message": result.summary.message(), "sweep": fields})


def _unread(reason: str) -> Response:
    log.error("sweep not run: %s", reason)
    return Response(503, {"status": "failed", "reason": reason})
