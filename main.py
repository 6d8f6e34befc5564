"""Cloud Functions entry points: ``audit`` (Pub/Sub CloudEvent), ``sync_index`` and ``sweep`` (HTTP)."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework
from cloudevents.http import CloudEvent

from function import cloudlog
from function.services.audit import AuditService
from function.services.sweep import SweepService
from function.services.sync import SyncService

cloudlog.set_up()
_audit: AuditService | None = None
_sync: SyncService | None = None
_sweep: SweepService | None = None


@functions_framework.cloud_event
def audit(cloud_event: CloudEvent) -> None:
    """One registry event in, one verdict line out; raises on RETRY so Pub/Sub redelivers."""
    global _audit
    if _audit is None:
        _audit = AuditService.from_environment()
    data: Any = cloud_event.get_data()
    _audit.handle(data, labels={"function": "audit"})


@functions_framework.http
def sync_index(request: flask.Request) -> tuple[bytes, int, dict[str, str]]:
    """Rebuild and publish the digest index for a verified k8s.io push or a resync request."""
    global _sync
    if _sync is None:
        _sync = SyncService.from_environment()
    return _sync.handle(request.method, request.headers, request.get_data()).flask()


@functions_framework.http
def sweep(request: flask.Request) -> tuple[bytes, int, dict[str, str]]:
    """Reconcile every destination registry with the index (Cloud Scheduler); answers with the summary."""
    global _sweep
    if _sweep is None:
        _sweep = SweepService.from_environment()
    return _sweep.handle(request.method).flask()
