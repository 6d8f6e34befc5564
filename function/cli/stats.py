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
    open_index_store,
    require_index,
)
from function.index.digests import SCHEMA_VERSION, DigestIndex
from function.storage.base import Confirmation

EPILOG = """\
Shows the index's URI, store generation, schema, source k8s.io commit and its time, when it was built,
when a sync last confirmed it current (a rebuild of the branch head that changed nothing writes no new
index, it only records the confirmation on the stored one), its age, counts, and resolution coverage:
how many promoted digests are resolved (their platform children known, or known to be single manifests).
Unresolved lists are fetched from the registries by the audit function on the first event that needs them.

The age counts from the later of the build and the confirmation, so the index of a quiet branch that the
hourly resync keeps confirming stays fresh.

exit codes:
  0   read (and, with --max-age, built or confirmed no longer ago than that)
  1   neither built nor confirmed within --max-age, or the index is unreadable (damaged, or a newer schema)
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
        help="exit 1 when the index was neither built nor confirmed by a sync within this (default: no limit)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text (default: text)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    index = require_index(args.index)
    confirmation = open_index_store(args.index).confirmation()
    # Read after the index: a confirmation of another generation than the one read says nothing of it.
    if confirmation is not None and confirmation.generation != index.generation:
        confirmation = None
    report = _report(args.index, index, confirmation)
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
            "the index at %s was last built or confirmed %s ago, longer than --max-age %gs: "
            "see `sync_index` in docs/runbook.md",
            args.index,
            _duration(report["age_seconds"]),
            args.max_age,
        )
        return EXIT_ALARM
    return EXIT_OK


def _report(uri: str, index: DigestIndex, confirmation: Confirmation | None) -> dict[str, Any]:
    moments = [dt.datetime.fromisoformat(index.built_at)]
    if confirmation is not None:
        moments.append(dt.datetime.fromisoformat(confirmation.confirmed_at))
    age = dt.datetime.now(dt.UTC) - max(moments)
    counts = index.counts()
    return {
        "uri": uri,
        "generation": index.generation,
        "schema": SCHEMA_VERSION,
        "source": index.source.as_dict(),
        "built_at": index.built_at,
        "confirmed": None if confirmation is None else {"at": confirmation.confirmed_at, "commit": confirmation.commit},
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
        ("built at", report["built_at"]),
        ("confirmed at", _confirmed(report["confirmed"])),
        ("age", f"{_duration(report['age_seconds'])} (since the later of the two)"),
        ("resolution", coverage),
        *((key, str(value)) for key, value in counts.items()),
        *(("problem", problem) for problem in report["problems"]),
    ]
    if "stale" in report:
        rows.append(("max age", f"{report['max_age_seconds']:g}s: {'STALE' if report['stale'] else 'fresh'}"))
    return "\n".join(f"{key:<14} {value}" for key, value in rows)


def _confirmed(confirmed: dict[str, Any] | None) -> str:
    if confirmed is None:
        return "not since it was built"
    return f"{confirmed['at']} (commit {confirmed['commit'] or 'unknown'})"


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
