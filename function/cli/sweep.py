"""``sweep``: the sweep from a laptop, with the same code as the ``sweep`` function."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from function import verdict as v
from function.cli.common import (
    EXIT_ALARM,
    EXIT_OK,
    LINES,
    TABLE,
    CommandError,
    Commands,
    add_index_option,
    command_parser,
    duration,
    log,
    open_index_store,
    require_index,
    show,
    silence_stdout,
)
from function.errors import PERMANENT, RETRYABLE
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
from function.verdict import Verdict

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
        commands,
        "sweep",
        summary="reconcile every destination registry with the digest index",
        epilog=EPILOG,
        default_format=LINES,
    )
    add_index_option(parser)
    parser.add_argument(
        "--host",
        action="append",
        metavar="HOST",
        help="sweep only this registry host (repeatable); default: every destination host of the index",
    )
    parser.add_argument(
        "--report",
        metavar="FILE",
        help="also write the findings and summary as one JSON document (its folder is checked first; default: none)",
    )
    parser.add_argument(
        "--max-seconds",
        type=duration,
        metavar="DURATION",
        help="time budget, seconds or 90s, 30m, 2h; what is not reached is named as unswept "
        f"(default: ${SWEEP_MAX_SECONDS_VARIABLE} or {DEFAULT_SWEEP_MAX_SECONDS:g})",
    )
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help="registry hosts swept at once (default: %(default)s)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise CommandError("--workers must be at least 1")
    if args.max_seconds is not None and args.max_seconds < 1:
        raise CommandError("--max-seconds must be at least 1s")
    # Before the sweep, not after it: a bad path must not throw away an hour's findings.
    report = _report_path(args.report) if args.report else None
    settings = Settings.from_environment()
    try:
        index = require_index(args.index, args.index_origin)
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
        on_finding=_writer() if args.format != TABLE else None,
        on_progress=_Progress(),
        # Each part as it starts, so a slow registry's wait is named at once (hidden by -q).
        on_listing=lambda part: log.info("sweep: listing %s", part),
    )
    hosts = args.host or sweep.hosts()
    log.info("sweeping %s: listing each host's repositories (budget %gs)", ", ".join(hosts), sweep.max_seconds)
    try:
        result = sweep.run(args.host)
    except ValueError as error:
        raise CommandError(f"--host: {error}") from None
    if args.format != TABLE:
        report_summary(logger, result.summary)
    else:
        show(_table(result))
    code = exit_code(result)
    if report is not None:
        try:
            _write_report(report, result)
        except OSError as error:
            log.error("could not write the report to %s: %s; the findings are on stdout", report, error)
            # An alarm stays an alarm; a clean sweep whose report is lost is a set-up to fix.
            return code if code == EXIT_ALARM else PERMANENT.exit_code
    return code


def _report_path(text: str) -> Path:
    path = Path(text).expanduser()
    folder = path.parent
    if path.is_dir():
        raise CommandError(f"--report {text} is a folder: give a file in it, as in {path / 'sweep.json'}")
    if not folder.is_dir():
        raise CommandError(f"--report {text}: the folder {folder} does not exist; create it or give another path")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise CommandError(f"--report {text}: {path} cannot be written here; give a writable path")
    return path


def _writer() -> Callable[[Verdict], None]:
    """Each finding's line as it is found; a reader that went away (`| head`) silences the rest."""
    closed = False

    def write(finding: Verdict) -> None:
        nonlocal closed
        if closed:
            return
        try:
            v.write_line(sys.stdout, finding)
        except BrokenPipeError:
            closed = True
            silence_stdout()

    return write


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
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


class _Progress:
    """Progress on stderr (hidden by -q): a host's first repository at once, then a line every few seconds."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def __call__(self, host: str, repositories: int, findings: int) -> None:
        now = time.monotonic()
        if now - self._last.get(host, -PROGRESS_EVERY) >= PROGRESS_EVERY:
            self._last[host] = now
            log.info("sweep: %s: %d repositories, %d findings so far", host, repositories, findings)
