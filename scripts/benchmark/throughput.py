"""Audit throughput on the real index, verdict lines included, against a bare json.loads + dict +
json.dumps loop over the same events."""

from __future__ import annotations

import io
import json

from benchmark.common import Row, best_of, real_events
from function.auditor import Auditor
from function.index.digests import DigestIndex
from function.index.source import FixedIndex
from function.verdict import emit, verdict_logger


def run(rows: list[Row], data: bytes, n_events: int) -> float:
    """Rows for the in-process audit; returns the bare loop's seconds, the yardstick of the CLI's run."""
    index = DigestIndex.from_json(data)
    events = real_events(index, n_events)
    lookup = {
        (f"{d}/{i.name}", digest): tags
        for p in index.projects.values()
        for d in p.destinations[:1]
        for i in p.images.values()
        for digest, tags in i.digests.items()
    }

    def bare() -> int:
        out = io.StringIO()
        for line in events:
            payload = json.loads(line)
            path, _, digest = payload["digest"].partition("@")
            out.write(json.dumps({"verdict": (path, digest) in lookup, "tag": payload.get("tag")}) + "\n")
        return len(events)

    auditor = Auditor(FixedIndex(index))
    logger = verdict_logger(io.StringIO())

    def audit() -> int:
        for line in events:
            emit(logger, auditor.audit_payload(line))
        return len(events)

    bare_s, _ = best_of(3, bare)
    audit_s, _ = best_of(3, audit)
    rows += [
        ("bare loop (json.loads + dict + json.dumps)", f"{len(events) / bare_s:,.0f} events/s", ""),
        (
            "audit, verdict lines included",
            f"{len(events) / audit_s:,.0f} events/s",
            f"{audit_s / bare_s:.1f}x the bare loop",
        ),
    ]
    return bare_s
