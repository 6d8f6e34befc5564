"""``stats``: what an index holds and how fresh it is, for people and for monitoring scripts."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from typing import Any

import orjson

from function.cli.common import (
    EXIT_ALARM,
    EXIT_OK,
    JSON,
    Commands,
    add_index_option,
    command_parser,
    duration,
    log,
    open_index_store,
    require_index,
    show,
    waiting,
)
from function.github.head import HeadError, pin
from function.index.digests import SCHEMA_VERSION, DigestIndex
from function.index.pending import PendingCommits, commit_time
from function.settings import PENDING_GRACE_VARIABLE, Settings
from function.storage.base import Confirmation

HEAD_URL_VARIABLE = "AUDITOR_HEAD_URL"

EPILOG = """\
Shows the index's URI, store generation, schema, source k8s.io commit and its time, when it was built,
when a sync last confirmed it current (a rebuild of the branch head that changed nothing writes no new
index, it only records the confirmation on the stored one), its age, counts, and resolution coverage:
how many promoted digests are resolved (their platform children known, or known to be single manifests).
Unresolved lists are fetched from the registries by the audit function on the first event that needs them.

The age counts from the later of the build and the confirmation, so the index of a quiet branch that the
hourly resync keeps confirming stays fresh. Pending commits are those sync_index accepted and has not
published: one waiting longer than AUDITOR_PENDING_GRACE_SECONDS (default 1800) is a stuck sync. The
branch head is asked at AUDITOR_HEAD_URL (default: kubernetes/k8s.io on GitHub's API; AUDITOR_BRANCH,
default main) to say how far behind it the index is, where that variable is set or --head is given;
when it cannot be asked, that line says so and nothing fails.

exit codes:
  0   read (and, with --max-age, built or confirmed no longer ago than that, and no pending commit
      waiting past the grace)
  1   with --max-age: neither built nor confirmed within it, or a pending commit has waited past
      AUDITOR_PENDING_GRACE_SECONDS; or the index is unreadable (damaged, or a newer schema)
  2   a bad argument, no index at the URI (missing bucket, folder, file or object), or no access
      to Cloud Storage (credentials, IAM): fix it first
  75  Cloud Storage was unreachable: try again

examples:
  python -m function stats --index gs://BUCKET/index.json.gz
  python -m function stats --index gs://BUCKET/index.json.gz --max-age 2h --json -q
"""


def add_parser(commands: Commands) -> None:
    parser = command_parser(commands, "stats", summary="show the counts and freshness of an index", epilog=EPILOG)
    add_index_option(parser)
    parser.add_argument(
        "--max-age",
        type=duration,
        metavar="DURATION",
        help="exit 1 when the index was neither built nor confirmed by a sync within this, or a pending commit "
        "has waited past the grace; seconds or 90s, 30m, 2h, 1d (default: no limit)",
    )
    parser.add_argument(
        "--head",
        action="store_true",
        help=f"ask the branch head even where ${HEAD_URL_VARIABLE} is unset (its default: GitHub's API for "
        "kubernetes/k8s.io); default: ask only where it is set",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_environment()
    index = require_index(args.index, args.index_origin)
    store = open_index_store(args.index, args.index_origin)
    confirmation = store.confirmation()
    # Read after the index: a confirmation of another generation than the one read says nothing of it.
    if confirmation is not None and confirmation.generation != index.generation:
        confirmation = None
    with waiting(f"reading the pending commits beside {args.index}"):
        pending = PendingCommits.beside(store).newer_than(index.source)
    report = _report(args.index, index, confirmation)
    grace = settings.pending_grace_seconds
    now = time.time()
    report["pending_grace_seconds"] = grace
    report["pending"] = [
        {
            "commit": p.commit,
            "committed_at": p.committed_at,
            "accepted_at": _instant(p.recorded_at),
            "waiting_seconds": int(now - p.recorded_at),
            "past_grace": now - p.recorded_at >= grace,
        }
        for p in pending
    ]
    report["head"] = _head(settings, index, args.head or HEAD_URL_VARIABLE in os.environ)
    stuck = [p for p in report["pending"] if p["past_grace"]]
    stale = args.max_age is not None and (report["age_seconds"] > args.max_age or bool(stuck))
    if args.max_age is not None:
        report["max_age_seconds"] = args.max_age
        report["stale"] = stale
    show(orjson.dumps(report).decode() if args.format == JSON else _text(report))
    if not stale:
        return EXIT_OK
    if report["age_seconds"] > args.max_age:
        log.error(
            "the index at %s was last built or confirmed %s ago, longer than --max-age %gs: "
            "see `sync_index` in docs/runbook.md",
            args.index,
            _duration(report["age_seconds"]),
            args.max_age,
        )
    for each in stuck:
        log.error(
            "sync_index accepted k8s.io commit %s %s ago and has not published it (%s %gs): "
            "see 'stale sync' in docs/runbook.md",
            each["commit"],
            _duration(each["waiting_seconds"]),
            PENDING_GRACE_VARIABLE,
            grace,
        )
    return EXIT_ALARM


def _head(settings: Settings, index: DigestIndex, ask: bool) -> dict[str, Any]:
    """Where the promoted branch is now, and how far behind it the index is; unknown is no failure.

    Asked only where the operator said so ($AUDITOR_HEAD_URL set, or --head): a machine without a route to
    GitHub must not wait on it."""
    if not ask:
        return {"known": False, "problem": f"not asked: set {HEAD_URL_VARIABLE} or give --head"}
    try:
        with waiting(f"asking {settings.head_url.format(branch=settings.branch)} for the branch head"):
            head = pin(settings.head_url, settings.branch)
    except (HeadError, KeyError, IndexError, ValueError) as error:
        return {"known": False, "problem": str(error)}
    known: dict[str, Any] = {"known": True, "branch": settings.branch, "commit": head.sha}
    known["committed_at"] = head.committed_at
    known["index_at_head"] = head.sha == index.source.commit
    behind = None
    if not known["index_at_head"] and index.source.committed_at:
        behind = int((commit_time(head.committed_at) - commit_time(index.source.committed_at)).total_seconds())
    known["behind_seconds"] = behind
    return known


def _instant(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).isoformat(timespec="seconds")


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
        ("branch head", _head_text(report["head"], source)),
        ("built at", report["built_at"]),
        ("confirmed at", _confirmed(report["confirmed"])),
        ("age", f"{_duration(report['age_seconds'])} (since the later of the two)"),
        ("pending", f"{len(report['pending'])} commits accepted by sync_index and not published"),
        *(("  commit", _pending_text(p, report["pending_grace_seconds"])) for p in report["pending"]),
        ("resolution", coverage),
        *((key, str(value)) for key, value in counts.items()),
        *(("problem", problem) for problem in report["problems"]),
    ]
    if "stale" in report:
        stuck = any(p["past_grace"] for p in report["pending"])
        verdict = "STALE" if report["stale"] else "fresh"
        if stuck:
            verdict += " (a pending commit waited past the grace)"
        rows.append(("max age", f"{report['max_age_seconds']:g}s: {verdict}"))
    return "\n".join(f"{key:<14} {value}" for key, value in rows)


def _head_text(head: dict[str, Any], source: dict[str, Any]) -> str:
    if not head["known"]:
        return f"unknown ({head['problem']})"
    where = f"{head['commit']} ({head['branch']}, {head['committed_at']})"
    if head["index_at_head"]:
        return f"{where}: the index is at the head"
    if head["behind_seconds"] is None:
        return f"{where}: the index is from another commit"
    return f"{where}: the index's commit is {_duration(head['behind_seconds'])} older"


def _pending_text(pending: dict[str, Any], grace: float) -> str:
    late = f": PAST the {grace:g}s grace, a stuck sync" if pending["past_grace"] else ""
    waited = _duration(pending["waiting_seconds"])
    return f"{pending['commit']} ({pending['committed_at'] or 'time unknown'}) waiting {waited}{late}"


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
