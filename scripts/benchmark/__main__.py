"""``python scripts/benchmark``: every scenario, one table (see __init__.py)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Run as a folder: its scenarios import each other as the package ``benchmark`` (scripts/ on the path), and
# the project as from its root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NO_GCE_CHECK", "True")
os.environ["GCE_METADATA_HOST"] = os.environ["GCE_METADATA_IP"] = "127.0.0.1:1"

import benchmark
from benchmark import cli_audit, cold_start, freshness, offline, registry_wave, sweep, sweep_k8s, throughput
from benchmark.common import Row, real_events, table
from function.index.digests import DigestIndex
from tests.support import registry as reg
from tests.support.manifests import SNAPSHOT


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/benchmark", description=(benchmark.__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=20000, help="events of the throughput run (default: 20000)")
    parser.add_argument("--skip-registry", action="store_true", help="no promotion wave on Debian's registry")
    parser.add_argument("--skip-gcs", action="store_true", help="no cold start from fake-gcs-server")
    parser.add_argument("--skip-sweep", action="store_true", help="no sweep scenarios")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    if not (SNAPSHOT / "manifests").is_dir():
        print(f"the k8s.io snapshot is not at {SNAPSHOT}", file=sys.stderr)
        return 2
    registry = shutil.which(reg.REGISTRY_BINARY) is not None
    rows: list[Row] = []
    indexes = offline.run(rows)
    real = indexes["real k8s.io index"]
    bare_s = throughput.run(rows, real, args.events)
    if not args.skip_gcs:
        event = real_events(DigestIndex.from_json(real), 1)[0]
        cold_start.run(rows, indexes, event)
    with tempfile.TemporaryDirectory() as work:
        cli_audit.run(rows, Path(work), real, real_events(DigestIndex.from_json(real), args.events), bare_s)
        if not args.skip_registry and registry:
            registry_wave.run(rows, Path(work))
        freshness.run(rows, Path(work))
        if not args.skip_sweep and registry:
            sweep.run(rows, Path(work))
        if not args.skip_sweep:
            sweep.projection(rows)
            sweep_k8s.run(rows)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
