"""The CLI ``audit`` of the real events, a fresh process reading them from stdin and writing its verdict
lines, against the bare json.loads + dict + json.dumps loop over the same lines (measured by throughput)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmark.common import Row, best_of

ROOT = Path(__file__).resolve().parents[2]


def run(rows: list[Row], work: Path, data: bytes, events: list[str], bare_s: float) -> None:
    index = work / "cli-index.json"
    index.write_bytes(data)
    lines = ("\n".join(events) + "\n").encode()

    def audit() -> float:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "function", "audit", "--index", str(index)],
            input=lines,
            capture_output=True,
            cwd=ROOT,
            check=False,
            # Buffered output, as a shell starts it (PYTHONUNBUFFERED makes every verdict line a write).
            env={name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"},
        )
        # 0 when every verdict is VERIFIED or IGNORED: anything else would time another run than the real one.
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        return time.perf_counter() - started

    cli_s, _ = best_of(3, audit)
    rows.append(
        (
            f"CLI audit of {len(events):,} real events (process start, index load, verdict lines)",
            f"{cli_s:.2f} s",
            f"{cli_s / bare_s:.1f}x the bare loop (target within 10x)",
        )
    )
