"""``python -m function sweep``: the sweep from a laptop, with the same code as the ``sweep`` function."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from function import verdict as v
from function.index.publish import read_index
from function.index.store import StoreError, open_store
from function.services.config import setting_list
from function.sweep.runner import (
    DEFAULT_MAX_SECONDS,
    DEFAULT_WORKERS,
    Result,
    Sweep,
    finding_line,
    report_summary,
)
from function.table import render_verdicts

# The CLI's exit codes (see function/cli.py).
EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_UNSWEPT = 75

MAX_SECONDS_VARIABLE = "AUDITOR_SWEEP_MAX_SECONDS"
FROZEN_VARIABLE = "AUDITOR_FROZEN_PREFIXES"
PROGRESS_EVERY = 2.0

log = logging.getLogger("function")

EPILOG = f"""\
Lists what every destination registry of the index holds (or those of --host) and checks it against the
index with the audit's own rules. One verdict line ("source": "sweep") per finding on stdout: REJECTED for
content nothing explains, MISSING for a promoted digest, platform child or tag a destination lacks; then
one summary line with the key "sweep". Paths under {FROZEN_VARIABLE} are not swept.

exit codes:
  0   clean and complete
  1   anything REJECTED or MISSING
  2   a permanent error: a bad argument, no index at --index, an unreadable index
  75  a part was left unswept (a registry fault, or the time budget) and nothing else is wrong

example:
  .venv/bin/python -m function sweep --index gs://BUCKET/index.json.gz \\
      --host us-central1-docker.pkg.dev --report sweep.json --format table
"""


def register(commands: Any) -> None:
    """Add ``sweep`` to the CLI's subcommands (``argparse``'s ``add_subparsers()`` result)."""
    parser = commands.add_parser(
        "sweep",
        help="reconcile every destination registry with the index",
        description="Reconcile the destination registries with the digest index.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--index", required=True, help="gs://bucket/object or a local path")
    parser.add_argument(
        "--host",
        action="append",
        metavar="HOST",
        help="sweep only this registry host (repeatable); default: every destination host of the index",
    )
    parser.add_argument("--report", metavar="FILE", help="also write the findings and summary as one JSON document")
    parser.add_argument(
        "--format", choices=("json", "table"), default="json", help="verdict lines, or a table (default: %(default)s)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        # A string default goes through type=float too, so a bad variable is reported like a bad flag.
        default=os.environ.get(MAX_SECONDS_VARIABLE) or f"{DEFAULT_MAX_SECONDS:g}",
        help=f"time budget; what is not reached is named as unswept (default: {MAX_SECONDS_VARIABLE} or %(default)s)",
    )
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help="registry hosts swept at once (default: %(default)s)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.max_seconds <= 0 or args.workers < 1:
        log.error("--max-seconds must be positive and --workers at least 1")
        return EXIT_USAGE
    try:
        loaded = read_index(open_store(args.index))
    except ValueError as error:  # a bad URI, or an index that has to be rebuilt (InvalidIndex)
        log.error("%s", error)
        return EXIT_USAGE
    except StoreError as error:
        log.error("%s; try again", error)
        return EXIT_UNSWEPT
    if loaded is None:
        log.error("no digest index at %s: build one with `python -m function build-index`", args.index)
        return EXIT_USAGE
    logger = v.verdict_logger(sys.stdout)
    sweep = Sweep(
        loaded[0],
        frozen_prefixes=setting_list(FROZEN_VARIABLE),
        max_seconds=args.max_seconds,
        workers=args.workers,
        on_finding=(lambda finding: v.emit(logger, finding)) if args.format == "json" else None,
        on_progress=_Progress() if sys.stderr.isatty() else None,
    )
    try:
        result = sweep.run(args.host)
    except ValueError as error:
        log.error("--host: %s", error)
        return EXIT_USAGE
    if args.format == "json":
        report_summary(logger, result.summary)
    else:
        print(_table(result))
    if args.report and not _write_report(Path(args.report), result):
        return EXIT_USAGE
    return exit_code(result)


def exit_code(result: Result) -> int:
    if not result.summary.clean:
        return EXIT_FINDINGS
    return EXIT_CLEAN if result.summary.complete else EXIT_UNSWEPT


def _table(result: Result) -> str:
    # The summary first, so that the table ends with its counts per verdict, as every table of the CLI.
    summary = result.summary
    text = [summary.message(), f"  {summary.registry_calls} registry calls in {summary.seconds:.1f} s"]
    text += [f"  unswept: {part['path']}: {part['reason']}" for part in summary.unswept]
    text += ["", render_verdicts([finding_line(f) for f in result.findings])]
    return "\n".join(text)


def _write_report(path: Path, result: Result) -> bool:
    document = {"findings": [finding_line(f) for f in result.findings], "summary": result.summary.fields()}
    try:
        path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as error:
        log.error("could not write the report to %s: %s; give a writable --report path", path, error)
        return False
    return True


class _Progress:
    """Progress for a person at a terminal: one stderr line per host every few seconds."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def __call__(self, host: str, repositories: int, findings: int) -> None:
        now = time.monotonic()
        if now - self._last.get(host, 0.0) >= PROGRESS_EVERY:
            self._last[host] = now
            print(f"sweep: {host}: {repositories} repositories, {findings} findings so far", file=sys.stderr)
