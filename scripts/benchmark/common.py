"""What every scenario shares: the result rows, best-of timing, the events of the real index, the table."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from typing import Any

# Nothing here may reach a Google metadata server: set before google-auth is imported.
os.environ.setdefault("NO_GCE_CHECK", "True")
os.environ["GCE_METADATA_HOST"] = os.environ["GCE_METADATA_IP"] = "127.0.0.1:1"

from function.index.digests import DigestIndex

Row = tuple[str, str, str]
"""One line of the table: what was measured, the result, a note (the target, what it is compared with)."""


def best_of(runs: int, work: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


def real_events(index: DigestIndex, n: int) -> list[str]:
    rng = random.Random(1)
    entries = [
        (f"{p.destinations[0]}/{i.name}", d, sorted(t))
        for p in index.projects.values()
        if p.destinations
        for i in p.images.values()
        for d, t in i.digests.items()
    ]
    events = []
    for path, digest, tags in rng.choices(entries, k=n):
        payload = {"action": "INSERT", "digest": f"{path}@{digest}"}
        if tags:
            payload["tag"] = f"{path}:{rng.choice(tags)}"
        events.append(json.dumps(payload))
    return events


def table(rows: list[Row]) -> str:
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value:<34}  {note}".rstrip() for name, value, note in rows)
