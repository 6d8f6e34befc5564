"""``sweep``: the sweep from a laptop, with the same code as the ``sweep`` function."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import orjson

from function import verdict as v
from function.cli.common import (
    EXIT_ALARM,
    EXIT_OK,
    JSON,
    CommandError,
    Commands,
    add_format_option,
    add_index_option,
    bounded,
    command_parser,
    open_index_store,
    require_index,
)
from function.errors import RETRYABLE
from function.index.digests import InvalidIndex
from function.settings import (
    DEFAULT_SWEEP_MAX_SECONDS,
    FROZEN_PREFIXES_VARIABLE,
    SWEEP_MAX_SECONDS_VARIABLE,
    Settings,
)
from function.signatures import SigningPolicy
from function.sweep import verified
from function.sweep.runner import (
    DEFAULT_WORKERS,
    Result,
    Sweep,
    finding_line,
    report_summary,
)
from function.sweep.unsigned import SigningRequirement
from function.table import render_verdicts

PROGRESS_EVERY = 2.0

EPILOG = f"""\
Lists what every destination registry of the index holds (or those of --host) and checks it against the
index with the audit's own rules. One verdict line ("source": "sweep") per finding on stdout: REJECTED for
content nothing explains, MISSING for a promoted digest, platform child or tag a destination lacks; then
one summary line with the key "sweep". Paths under {FROZEN_PREFIXES_VARIABLE} are not swept.

exit codes:
  0   clean and complete
  1   anything REJECTED or MISSING
  2   a permanent error: a bad argument, no index at --index, an unreadable index
  75  a part was left unswept (a registry fault, or the time budget) and nothing else is wrong

example:
  .venv/bin/python -m function sweep --index gs://BUCKET/index.json.gz \\
      --host us-central1-docker.pkg.dev --report sweep.json --format table
"""


def add_parser(commands: Commands) -> None:
    parser = command_parser(
        commands, "sweep", summary="reconcile every destination registry with the digest index", epilog=EPILOG
    )
    add_index_option(parser)
    parser.add_argument(
        "--host",
        action="append",
        metavar="HOST",
        help="sweep only this registry host (repeatable); default: every destination host of the index",
    )
    parser.add_argument("--report", metavar="FILE", help="also write the findings and summary as one JSON document")
    add_format_option(parser)
    parser.add_argument(
        "--max-seconds",
        type=bounded(float, 1.0),
        help="time budget; what is not reached is named as unswept "
        f"(default: ${SWEEP_MAX_SECONDS_VARIABLE} or {DEFAULT_SWEEP_MAX_SECONDS:g})",
    )
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help="registry hosts swept at once (default: %(default)s)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise CommandError("--workers must be at least 1")
    settings = Settings.from_environment()
    try:
        index = require_index(args.index)
    except InvalidIndex as error:
        # Not exit 1: that says the registries hold something wrong, and nothing was swept.
        raise CommandError(
            f"{args.index} is unreadable ({error}): republish it with sync_index or "
            f"`python -m function build-index --force --out {args.index}`, or sweep with the version that wrote it"
        ) from None
    logger = v.verdict_logger(sys.stdout)
    sweep = Sweep(
        index,
        frozen_prefixes=settings.frozen_prefixes,
        max_seconds=settings.sweep_max_seconds if args.max_seconds is None else args.max_seconds,
        workers=args.workers,
        signing=SigningPolicy.from_settings(settings),
        requirement=SigningRequirement.from_settings(settings),
        signed_records=open_index_store(args.index).records(verified.FOLDER),
        on_finding=(lambda finding: v.emit(logger, finding)) if args.format == JSON else None,
        on_progress=_Progress() if sys.stderr.isatty() else None,
    )
    try:
        result = sweep.run(args.host)
    except ValueError as error:
        raise CommandError(f"--host: {error}") from None
    if args.format == JSON:
        report_summary(logger, result.summary)
    else:
        print(_table(result))
    if args.report:
        _write_report(Path(args.report), result)
    return exit_code(result)


def exit_code(result: Result) -> int:
    if not result.summary.clean:
        return EXIT_ALARM
    return EXIT_OK if result.summary.complete else RETRYABLE.exit_code


def _table(result: Result) -> str:
    # The summary first, so that the table ends with its counts per verdict, as every table of the CLI.
    summary = result.summary
    text = [summary.message(), f"  {summary.registry_calls} registry calls in {summary.seconds:.1f} s"]
    text += [f"  unswept: {part['path']}: {part['reason']}" for part in summary.unswept]
    text += ["", render_verdicts([finding_line(f) for f in result.findings])]
    return "\n".join(text)


def _write_report(path: Path, result: Result) -> None:
    document = {"findings": [finding_line(f) for f in result.findings], "summary": result.summary.fields()}
    try:
        path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as error:
        raise CommandError(f"could not write the report to {path}: {error}; give a writable --report path") from None


class _Progress:
    """Progress for a person at a terminal: one stderr line per host every few seconds."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def __call__(self, host: str, repositories: int, findings: int) -> None:
        now = time.monotonic()
        if now - self._last.get(host, 0.0) >= PROGRESS_EVERY:
            self._last[host] = now
            print(f"sweep: {host}: {repositories} repositories, {findings} findings so far", file=sys.stderr)
