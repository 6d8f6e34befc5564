"""The structured lines the functions write, produced by the code's own emitters.

One function per kind of line, so that the Terraform tests check the log-based metrics against what the code
really writes: verdict lines come from a real ``Auditor`` decision through ``verdict.emit``, and the
operational lines (sync outcome, freshness, sweep summary) from the functions the services write them with.
A renamed field there fails the Terraform tests instead of silently disabling an alert.
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

from function import verdict
from function.auditor import Auditor
from function.cloudlog import structured_lines
from function.index import manifests
from function.index.digests import DigestIndex, Source
from function.index.freshness import report_stale, report_unreadable
from function.index.pending import Pending
from function.index.source import FixedIndex
from function.services.sync import report_outcome
from function.sweep.runner import Summary, report_summary
from function.verdict import Verdict
from tests.support.manifests import digest, write_project

REGION = "us-central1-docker.pkg.dev"
DESTINATION = f"{REGION}/k8s-artifacts-prod/images"
PROMOTED = digest("pause-3.10")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _written(write: Any) -> str:
    """The one line ``write(logger)`` puts on the verdict logger's stream."""
    stream = io.StringIO()
    write(verdict.verdict_logger(stream, lines=structured_lines))
    lines = [line for line in stream.getvalue().splitlines() if '"message"' in line]
    assert len(lines) == 1, lines
    return lines[0]


@cache
def _auditor() -> Auditor:
    with tempfile.TemporaryDirectory() as root:
        write_project(
            Path(root), "p", destinations=[DESTINATION], images=[{"name": "pause", "dmap": {PROMOTED: ["3.10"]}}]
        )
        index = DigestIndex.build(manifests.load(Path(root)), source=Source(commit=COMMIT))
    return Auditor(FixedIndex(index.with_resolutions({PROMOTED: []})))


def _decision(payload: str) -> Verdict:
    return _auditor().audit_payload(payload)


def event_verdict(kind: str) -> Verdict:
    """A real decision of the audit: ``verified``, ``rejected`` (unknown digest) or ``malformed``."""
    payloads = {
        "verified": json.dumps(
            {"action": "INSERT", "digest": f"{DESTINATION}/pause@{PROMOTED}", "tag": f"{DESTINATION}/pause:3.10"}
        ),
        "rejected": json.dumps({"action": "INSERT", "digest": f"{DESTINATION}/pause@{digest('intruder')}"}),
        "malformed": "not json",
    }
    return _decision(payloads[kind])


def verdict_line(decided: Verdict) -> str:
    return _written(lambda logger: verdict.emit(logger, decided))


def event_line(kind: str) -> str:
    """The verdict line of a registry event, as the audit function writes it."""
    return verdict_line(event_verdict(kind))


def sweep_rejected_line() -> str:
    """A REJECTED finding of the sweep: the line an INSERT of the unexplained content would get."""
    return verdict_line(replace(event_verdict("rejected"), source=verdict.Origin.SWEEP, action=None))


def sweep_missing_line() -> str:
    """A MISSING finding of the sweep: a promoted digest absent from one destination."""
    missing = Verdict(
        verdict.Kind.MISSING,
        f"{DESTINATION}/pause@{PROMOTED} is promoted but absent from {REGION}.",
        path=f"{DESTINATION}/pause",
        digest=PROMOTED,
        reason="absent",
        image="pause",
        source=verdict.Origin.SWEEP,
        index=verdict.IndexRef(COMMIT, 7),
    )
    return verdict_line(missing)


def sync_line(outcome: str) -> str:
    """A sync outcome line: published, unchanged, refused, failed or queued."""
    fields: dict[str, Any] = {"generation": 8} if outcome == "published" else {}
    return _written(lambda logger: report_outcome(logger, outcome, COMMIT, f"index sync {outcome}", **fields))


def stale_sync_line() -> str:
    """A merged commit still not published after the grace."""
    pending = Pending(COMMIT, "2026-11-29T11:59:00Z", 1_800_000_000.0)
    return _written(lambda logger: report_stale(logger, pending, Source("f" * 40, "2026-11-28T10:00:00Z"), 1800))


def index_unreadable_line() -> str:
    """A published index the function cannot read."""
    return _written(lambda logger: report_unreadable(logger, "gs://bucket/index.json.gz", 9, 8, ValueError("schema 3")))


def sweep_summary_line(*, complete: bool, rejected: int = 0, missing: int = 0) -> str:
    """The sweep's last line."""
    summary = Summary(
        hosts=2,
        repositories=40,
        manifests=900,
        rejected=rejected,
        missing=missing,
        unswept=[] if complete else [{"path": f"{REGION}/k8s-artifacts-prod/images/pause", "reason": "HTTP 503"}],
        registry_calls=120,
        seconds=31.5,
    )
    return _written(lambda logger: report_summary(logger, summary))
