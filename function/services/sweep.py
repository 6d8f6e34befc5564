"""The ``sweep`` Cloud Function (HTTP, for Cloud Scheduler): one sweep per request, the summary as answer.

Finding lines and the summary line go to stdout like the audit's verdict lines; the answer is 200 with the
summary whenever the sweep ran (findings or not: they are alarms of their own); when the index could not
be read, the status of the error's kind (``function.errors``): 503 for a fault or an index that is not
there yet or not readable by this version (the scheduler's retry runs it again), 500 for a set-up to fix.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from function import verdict as v
from function.errors import RETRYABLE, Kind, kind
from function.index.digests import InvalidIndex
from function.index.publish import read_index
from function.registry.client import RegistryClient
from function.services.response import Response
from function.settings import DEFAULT_SWEEP_MAX_SECONDS, Settings
from function.signatures import SigningPolicy
from function.storage.base import IndexStore
from function.storage.errors import StoreError
from function.storage.uri import open_store
from function.sweep import verified
from function.sweep.runner import RegistryFactory, Sweep, report_summary
from function.sweep.unsigned import SigningRequirement

log = logging.getLogger(__name__)

LABELS = {"function": "sweep"}


class SweepService:
    def __init__(
        self,
        store: IndexStore,
        *,
        registry_factory: RegistryFactory = RegistryClient,
        frozen_prefixes: Sequence[str] = (),
        max_seconds: float = DEFAULT_SWEEP_MAX_SECONDS,
        logger: logging.Logger | None = None,
        signing: SigningPolicy | None = None,
        requirement: SigningRequirement | None = None,
    ) -> None:
        self.store = store
        self.signing = signing
        self.requirement = requirement
        self.registry_factory = registry_factory
        self.frozen_prefixes = tuple(frozen_prefixes)
        self.max_seconds = max_seconds
        self.logger = logger or v.verdict_logger()
        # One sweep at a time per instance: a second one would only double the registry calls.
        self._running = threading.Lock()

    @classmethod
    def from_environment(cls) -> SweepService:
        settings = Settings.from_environment()
        return cls(
            open_store(settings.required_index_uri()),
            frozen_prefixes=settings.frozen_prefixes,
            max_seconds=settings.sweep_max_seconds,
            signing=SigningPolicy.from_settings(settings),
            requirement=SigningRequirement.from_settings(settings),
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
        except StoreError as error:
            return _unread(str(error), kind(error))
        except InvalidIndex as error:
            return _unread(str(error), RETRYABLE)
        if index is None:
            return _unread(f"no digest index at {self.store.uri} yet: run sync_index or build-index", RETRYABLE)
        sweep = Sweep(
            index,
            registry_factory=self.registry_factory,
            frozen_prefixes=self.frozen_prefixes,
            max_seconds=self.max_seconds,
            signing=self.signing,
            requirement=self.requirement,
            signed_records=self.store.records(verified.FOLDER),
            on_finding=lambda finding: v.emit(self.logger, finding, labels=LABELS),
        )
        result = sweep.run()
        report_summary(self.logger, result.summary)
        fields = result.summary.fields()
        # The summary's fields at the top, and the summary line's own shape (message, sweep) alongside.
        return Response(200, {"status": "swept", **fields, "message": result.summary.message(), "sweep": fields})


def _unread(reason: str, unread: Kind) -> Response:
    log.error("sweep not run: %s", reason)
    return Response(unread.http_status, {"status": "failed", "reason": reason})
