"""The sweep's peak memory against a listing without end: ``python -m function sweep`` in a process of its
own, its peak RSS read from the kernel (``wait4``), against a loopback server answering every ``tags/list``
with about 4 MiB of Google's extension format whose ``Link`` points back at the page itself, or on to new
pages for ever (tests/support/looping.py). The same sweep over a 1 KiB page is the process's own baseline.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmark.common import Row
from function.index.digests import Source
from function.index.publish import rebuild
from function.storage.uri import open_store
from tests.support.looping import PAGE_BYTES, looping
from tests.support.manifests import write_project
from tests.support.proxy import RegistryProxy

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "1" * 64
# What the listing sends: label, page size, whether each page links on to a new one.
CASES = (
    ("a 1 KiB page linking back (baseline)", 1024, False),
    ("a 4 MiB page linking back at itself", PAGE_BYTES, False),
    ("new 4 MiB pages for ever (stops past 64 MiB)", PAGE_BYTES, True),
)


def run(rows: list[Row], work: Path) -> None:
    """Peak RSS of the sweep CLI for each listing of CASES."""
    for label, page_bytes, onward in CASES:
        # Nothing is forwarded: the server answers every listing, and the sweep asks nothing else.
        with RegistryProxy("http://127.0.0.1:1") as server:
            server.serve(looping(None, extension=True, onward=onward, page_bytes=page_bytes))
            rss, code, calls = _peak_rss(server, work / f"listing-{len(rows)}")
        rows.append(
            (
                f"sweep peak RSS, {label}",
                f"{rss / 1024:.0f} MiB",
                f"exit {code}, {calls} tags/list answers read; the repository is named unswept",
            )
        )


def _peak_rss(server: RegistryProxy, work: Path) -> tuple[int, int, int]:
    """The sweep's peak resident set in KiB, its exit code, and the listing requests the server saw."""
    root = work / "manifests"
    write_project(
        root, "looping", destinations=[f"{server.host}/r/images"], images=[{"name": "pause", "dmap": {DIGEST: ["1"]}}]
    )
    index = work / "index.json"
    rebuild(root, open_store(str(index)), source=Source(commit="c0ffee"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUDITOR_SIGNING_REGISTRY": ""}
    child = subprocess.Popen(
        [sys.executable, "-m", "function", "sweep", "--index", str(index)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    calls = sum(1 for r in server.registry_requests() if r.path.endswith("/tags/list"))
    return usage.ru_maxrss, child.returncode, calls
