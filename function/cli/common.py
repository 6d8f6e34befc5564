"""What every command shares: exit codes, option types, log levels, and reading the index."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import TypeAlias

from function import verdict as v
from function.errors import Permanent
from function.index.digests import DigestIndex
from function.index.publish import read_index
from function.storage.base import IndexStore
from function.storage.local import LocalStore
from function.storage.uri import open_store
from function.table import render_verdicts
from function.verdict import Verdict

# The outcomes that are not errors; errors exit by their kind (function.errors).
EXIT_OK = 0
EXIT_ALARM = 1

URI_HELP = "gs://bucket/object (Cloud Storage; its emulator where STORAGE_EMULATOR_HOST is set) or a local path"
INDEX_ENV = "AUDITOR_INDEX_URI"
JSON = "json"
TABLE = "table"

log = logging.getLogger("function.cli")


# Loggers whose INFO lines are progress a person waits for; everything else shows from WARNING up
# unless -v (the registry transport's retries are INFO and would drown the output).
PROGRESS_LOGGERS = ("function.cli", "function.index")


class CommandError(Permanent):
    """Something the operator must fix before running again (a bad argument, a missing bucket, folder or
    file); the message says what to fix."""


# What ``add_subparsers`` returns; argparse names the type only privately.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def command_parser(commands: Commands, name: str, *, summary: str, epilog: str) -> argparse.ArgumentParser:
    """A subcommand with the options every command takes (-q/-v) and a help text ending in ``epilog``."""
    parser = commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=epilog,
        # Keeps the hand-made line breaks of the epilogs (exit codes, examples).
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=0, help="log errors only"
    )
    loudness.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const=1,
        help="log everything, every registry retry included (default: warnings and progress)",
    )
    return parser


def add_index_option(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get(INDEX_ENV)
    parser.add_argument(
        "--index",
        required=default is None,
        default=default,
        metavar="URI",
        help=f"the digest index: {URI_HELP} (default: ${INDEX_ENV}{f', now {default}' if default else ''})",
    )


def add_format_option(parser: argparse.ArgumentParser) -> None:
    """``--format json|table`` of the commands that write verdicts (audit, sweep)."""
    parser.add_argument(
        "--format",
        choices=(JSON, TABLE),
        default=JSON,
        help="json: one verdict line each, as the functions write them; table: for people, "
        "ending with the count of each verdict (default: %(default)s)",
    )


def verdict_output(form: str) -> tuple[Callable[[Verdict], None], Callable[[], None]]:
    """How each verdict is written in ``form``, and what is written after the last one."""
    if form == JSON:
        # Operational lines (a stale sync's) join the verdict lines on stdout, through the verdict logger;
        # the verdicts go straight there: a log record each would cost more than deciding it from the index.
        v.verdict_logger(sys.stdout)
        return (lambda verdict: v.write_line(sys.stdout, verdict)), (lambda: None)
    lines: list[dict[str, object]] = []
    return (lambda verdict: lines.append(verdict.fields())), (lambda: print(render_verdicts(lines), end=""))


def set_log_levels(verbosity: int) -> None:
    """Progress and problems go to stderr; stdout carries only results (verdict lines, tables, stats)."""
    root = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.DEBUG}[verbosity]
    form = "%(levelname)s %(name)s: %(message)s" if verbosity > 0 else "%(levelname)s %(message)s"
    logging.basicConfig(level=root, stream=sys.stderr, format=form, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_structured_as_text)
    for name in PROGRESS_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbosity == 0 else root)


def _structured_as_text(record: logging.LogRecord) -> bool:
    """A structured line meant for Cloud Logging (such as a stale sync's) reaches people as its sentence."""
    if isinstance(record.msg, dict) and isinstance(record.msg.get("message"), str):
        record.msg, record.args = record.msg["message"], ()
    return True


def open_index_store(uri: str) -> IndexStore:
    try:
        store = open_store(uri)
    except ValueError as error:
        raise CommandError(str(error)) from None
    if isinstance(store, LocalStore) and store.path.is_dir():
        raise CommandError(f"{uri} is a folder: give the index file in it, as in {store.path / 'index.json.gz'}")
    return store


def load_index(uri: str) -> DigestIndex | None:
    """The index at ``uri``; None when its bucket holds no such object yet (a first sync may be on its way).

    A missing bucket, folder or local file is the operator's to fix: ``CommandError``."""
    store = open_index_store(uri)
    index = read_index(store)  # StoreMissing for a missing bucket or folder
    if index is not None:
        return index
    if isinstance(store, LocalStore):
        raise CommandError(
            f"no index file at {uri}: fix --index, or build one with "
            f"`python -m function build-index --manifests DIR --out {uri}`"
        )
    return None


def require_index(uri: str) -> DigestIndex:
    index = load_index(uri)
    if index is None:
        raise CommandError(
            f"no index at {uri} yet: the bucket exists but holds no such object. Fix --index, or publish one "
            f"(sync_index, or `python -m function build-index --manifests DIR --out {uri}`)"
        )
    return index


def bounded(kind: Callable[[str], float], low: float, high: float | None = None) -> Callable[[str], float]:
    """An argparse type: ``kind`` of the text, refused outside ``low``..``high``."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < low or (high is not None and value > high):
            span = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: give a value {span}")
        return value

    return parse
