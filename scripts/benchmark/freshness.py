"""Generation checks an audit instance makes, on a simulated clock over the real index: a burst of would-be
REJECTs, and an hour of steady VERIFIED traffic. (tests/test_freshness.py tests what they decide.)"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

from benchmark.common import Row
from function.index.digests import DigestIndex, Source
from function.index.publish import rebuild
from function.services.audit import AuditService
from function.verdict import verdict_logger
from tests.support.manifests import SNAPSHOT
from tests.support.stores import CountingStore

BURST_EVENTS, BURST_PER_SECOND = 1000, 100
STEADY_SECONDS = 3600


def run(rows: list[Row], work: Path) -> None:
    """Generation checks an audit instance makes, on a simulated clock over the real index."""
    store = CountingStore(work / "fresh-index.json")
    rebuild(SNAPSHOT, store, source=Source("0" * 40, "2024-06-01T00:00:00Z"))
    index = DigestIndex.from_json(store.path.read_bytes())
    listed, path = next(
        (d, f"{p.destinations[0]}/{i.name}")
        for p in index.projects.values()
        for i in p.images.values()
        for d in i.digests
        if p.destinations
    )
    now = [0.0]
    service = AuditService(
        store,
        registry_factory=lambda hosts: None,
        logger=verdict_logger(io.StringIO()),
        clock=lambda: now[0],
        wall=lambda: 1_800_000_000.0 + now[0],
    )

    def audit(digest: str) -> str:
        data = json.dumps({"action": "INSERT", "digest": f"{path}@{digest}"}).encode()
        body = {"message": {"data": base64.b64encode(data).decode(), "messageId": "1"}}
        return service.handle(body).verdict

    audit(listed)
    before = store.lookups
    for n in range(BURST_EVENTS):
        now[0] += 1 / BURST_PER_SECOND
        audit("sha256:" + hashlib.sha256(f"stray {n}".encode()).hexdigest())
    burst = store.lookups - before
    now[0] += 3600
    before = store.lookups
    for _ in range(STEADY_SECONDS):
        now[0] += 1
        audit(listed)
    steady = store.lookups - before
    rows += [
        (
            f"generation checks, burst of {BURST_EVENTS} would-be REJECTs ({BURST_PER_SECOND}/s)",
            f"{burst} checks",
            f"previous auditor: {BURST_EVENTS} (one per would-be REJECT)",
        ),
        (
            "generation checks, an hour of steady VERIFIED traffic (1/s)",
            f"{steady} checks",
            "previous auditor: 0 (a yanked digest stayed VERIFIED)",
        ),
    ]
