"""``stats``: what an index holds and how fresh it is, for people and for monitoring scripts."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

import orjson

from function.cli.common import (
    EXIT_ALARM,
    EXIT_OK,
    Commands,
    add_index_option,
    bounded,
    command_parser,
    log,
    require_index,
)
from function.index.digests import SCHEMA_VERSION, DigestIndex

EPILOG = """\
Shows the index's URI, store generation, schema, source k8s.io commit and its time, when it was built
and how long ago, its counts, and its resolution coverage: how many promoted digests are resolved (their
platform children known, or known to be single manifests). Unresolved lists are fetched from the
registries by the audit function on the first event that needs them.

exit codes:
  0   read (and, with --max-age, built no longer ago than that)
  1   built longer ago than --max-age, or the index is unreadable (damaged, or a newer schema)
  2   a bad argument, no index at the URI (missing bucket, folder, file or object), or no access
      to Cloud Storage (credentials, IAM): fix it first
  75  Cloud Storage was unreachable: try again

examples:
  python -m function stats --index gs://BUCKET/index.json.gz
  python -m function stats --index gs://BUCKET/index.json.gz --max-age 7200 --json -q
"""


def add_parser(commands: Commands) -> None:
    parser = command_parser(commands, "stats", summary="show the counts and freshness of an index", epilog=EPILOG)
    add_index_option(parser)
    parser.add_argument(
        "--max-age",
        type=bounded(float, 0.0),
        metavar="SECONDS",
        help="exit 1 when the index was built longer ago than this (default: no limit)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text (default: text)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    index = require_index(args.index)
    report = _report(args.index, index)
    stale = args.max_age is not None and report["age_seconds"] > args.max_age
    if args.max_age is not None:
        report["max_age_seconds"] = args.max_age
        report["stale"] = stale
    if args.json:
        print(orjson.dumps(report).decode())
    else:
        print(_text(report))
    if stale:
        log.error(
            "the index at %s was built %s ago, longer than --max-age %gs: see `sync_index` in docs/runbook.md",
            args.index,
            _duration(report["age_seconds"]),
            args.max_age,
        )
        return EXIT_ALARM
    return EXIT_OK


def _report(uri: str, index: DigestIndex) -> dict[str, Any]:
    age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(index.built_at)
    counts = index.counts()
    return {
        "uri": uri,
        "generation": index.generation,
        "schema": SCHEMA_VERSION,
        "source": index.source.as_dict(),
        "built_at": index.built_at,
        "age_seconds": int(age.total_seconds()),
        "counts": counts,
        "resolution": {
            "resolved": counts["resolved"],
            "unresolved": counts["unresolved"],
            # Every promoted list's children are known: no event waits for a registry to tell them.
            "children_resolved": counts["unresolved"] == 0,
        },
        "problems": index.problems,
    }


def _text(report: dict[str, Any]) -> str:
    source, counts, resolution = report["source"], report["counts"], report["resolution"]
    total = resolution["resolved"] + resolution["unresolved"]
    coverage = f"{resolution['resolved']} of {total} promoted digests resolved"
    if resolution["children_resolved"]:
        coverage += f": complete ({counts['manifest_lists']} manifest lists, {counts['children']} platform children)"
    else:
        coverage += f"; {resolution['unresolved']} unresolved, fetched from the registries on first use"
    rows = [
        ("index", report["uri"]),
        ("generation", str(report["generation"])),
        ("schema", str(report["schema"])),
        (
            "source commit",
            f"{source['commit'] or 'unknown'} (committed {source['committed_at'] or 'at an unknown time'})",
        ),
        ("built at", f"{report['built_at']} ({_duration(report['age_seconds'])} ago)"),
        ("resolution", coverage),
        *((key, str(value)) for key, value in counts.items()),
        *(("problem", problem) for problem in report["problems"]),
    ]
    if "stale" in report:
        rows.append(("max age", f"{report['max_age_seconds']:g}s: {'STALE' if report['stale'] else 'fresh'}"))
    return "\n".join(f"{key:<14} {value}" for key, value in rows)


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
