"""What every command shares: exit codes, option types, log levels, and reading the index."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

from function import verdict as v
from function.errors import Permanent
from function.index.digests import DigestIndex
from function.index.lookup import PUBLIC_HOST, nearest
from function.index.publish import read_index
from function.settings import FROZEN_PREFIXES_VARIABLE, INDEX_URI_VARIABLE
from function.storage.base import IndexStore
from function.storage.errors import StoreMissing
from function.storage.local import LocalStore
from function.storage.uri import open_store
from function.table import render_verdicts
from function.verdict import Verdict

# The outcomes that are not errors; errors exit by their kind (function.errors).
EXIT_OK = 0
EXIT_ALARM = 1

URI_HELP = "gs://bucket/object (Cloud Storage; its emulator where STORAGE_EMULATOR_HOST is set) or a local path"
INDEX_ENV = INDEX_URI_VARIABLE
INDEX_FLAG = "--index"
JSON = "json"
TABLE = "table"
# Each command's own default output: verdict lines (audit, sweep) or text for people (elsewhere).
LINES = "lines"
TEXT = "text"
# A person at 3 a.m. should not wait two silent minutes on Cloud Storage: a read that takes longer than
# this is a fault to retry (exit 75), said as such.
STORE_TIMEOUT_SECONDS = 20.0

log = logging.getLogger("function.cli")


# Loggers whose INFO lines are progress a person waits for; everything else shows from WARNING up
# unless -v (the registry transport's retries are INFO and would drown the output).
PROGRESS_LOGGERS = ("function.cli", "function.index")


class CommandError(Permanent):
    """Something the operator must fix before running again (a bad argument, a missing bucket, folder or
    file); the message says what to fix."""


# What ``add_subparsers`` returns; argparse names the type only privately.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def shared_options(default_format: str | None = None) -> argparse.ArgumentParser:
    """-q/-v and --format/--json, which every command takes before or after its name.

    Defaults are suppressed at both levels, so that what is given (anywhere) is kept; `finish_options`
    fills in the rest."""
    shared = argparse.ArgumentParser(add_help=False)
    loudness = shared.add_mutually_exclusive_group()
    loudness.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=-1,
        default=argparse.SUPPRESS,
        help="log errors only",
    )
    loudness.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const=1,
        default=argparse.SUPPRESS,
        help="log everything, every registry retry included (default: warnings and progress)",
    )
    form = shared.add_mutually_exclusive_group()
    form.add_argument(
        "--format",
        choices=(JSON, TABLE),
        default=argparse.SUPPRESS,
        help=_FORMAT_HELP[default_format],
    )
    form.add_argument(
        "--json", dest="format", action="store_const", const=JSON, default=argparse.SUPPRESS, help="--format json"
    )
    return shared


_FORMAT_HELP = {
    LINES: "json: one verdict line each, as the functions write them; table: for people, ending with the count "
    "of each verdict (default: json, the verdict lines)",
    TEXT: "json: one JSON object; table: for people, as the default (default: text)",
    None: "json or table, for every command (default: verdict lines for audit and sweep, text elsewhere)",
}


def finish_options(args: argparse.Namespace) -> argparse.Namespace:
    """The shared options' defaults, where neither level gave them."""
    args.verbosity = getattr(args, "verbosity", 0)
    if getattr(args, "format", None) is None:
        args.format = args.default_format
    return args


def command_parser(
    commands: Commands, name: str, *, summary: str, epilog: str, default_format: str = TEXT
) -> argparse.ArgumentParser:
    """A subcommand with the options every command takes (-q/-v, --format/--json) and a help text ending
    in ``epilog``."""
    parser = commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=epilog,
        parents=[shared_options(default_format)],
        # Keeps the hand-made line breaks of the epilogs (exit codes, examples).
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(default_format=default_format)
    return parser


class _IndexFlag(argparse.Action):
    """``--index``, remembering that the URI came from the flag rather than from $AUDITOR_INDEX_URI."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: Any = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.index_origin = INDEX_FLAG


def add_index_option(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get(INDEX_ENV)
    parser.add_argument(
        INDEX_FLAG,
        required=default is None,
        default=default,
        action=_IndexFlag,
        metavar="URI",
        help=f"the digest index: {URI_HELP} (default: ${INDEX_ENV}{f', now {default}' if default else ', unset'})",
    )
    # Errors about the URI name where it came from: the flag, or the variable.
    parser.set_defaults(index_origin=INDEX_ENV)


def duration(text: str) -> float:
    """An argparse type: seconds, or a number with a unit: ``90s``, ``30m``, ``2h``, ``1d``."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if found is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: give seconds, or as 90s, 30m, 2h, 1d")
    return float(found.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[found.group(2)]


def show(text: str) -> None:
    """``text`` and a newline on stdout; a reader that went away (``| head``) ends the output quietly."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        silence_stdout()


def silence_stdout() -> None:
    """After a closed pipe: nothing more reaches stdout, and Python's flush at exit stays quiet too."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


# A wait longer than this is said on stderr (within the 2 s a person waits before wondering).
SAY_WAIT_AFTER = 1.0


@contextmanager
def waiting(what: str) -> Iterator[None]:
    """Says on stderr what a wait is for once it has lasted ``SAY_WAIT_AFTER`` (progress; hidden by -q):
    quick answers leave stderr quiet, a slow storage or registry says what is slow."""
    timer = threading.Timer(SAY_WAIT_AFTER, log.info, ("%s ...", what))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def verdict_output(form: str) -> tuple[Callable[[Verdict], None], Callable[[], None]]:
    """How each verdict is written in ``form``, and what is written after the last one."""
    if form in (JSON, LINES):
        # Operational lines (a stale sync's) join the verdict lines on stdout, through the verdict logger;
        # the verdicts go straight there: a log record each would cost more than deciding it from the index.
        v.verdict_logger(sys.stdout)
        return (lambda verdict: v.write_line(sys.stdout, verdict)), (lambda: None)
    lines: list[dict[str, object]] = []
    return (lambda verdict: lines.append(verdict.fields())), (lambda: show(render_verdicts(lines).rstrip("\n")))


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


def open_index_store(uri: str, origin: str = INDEX_FLAG) -> IndexStore:
    try:
        store = open_store(uri, timeout=STORE_TIMEOUT_SECONDS, retry_timeout=STORE_TIMEOUT_SECONDS)
    except ValueError as error:
        raise CommandError(f"{origin}: {error}") from None
    if isinstance(store, LocalStore) and store.path.is_dir():
        raise CommandError(
            f"{origin}: {uri} is a folder: give the index file in it, as in {store.path / 'index.json.gz'}"
        )
    return store


def load_index(uri: str, origin: str = INDEX_FLAG) -> DigestIndex | None:
    """The index at ``uri`` (from ``origin``, the flag or the variable); None when its bucket holds no such
    object yet (a first sync may be on its way).

    A missing bucket, folder or local file is the operator's to fix: ``CommandError``."""
    store = open_index_store(uri, origin)
    try:
        with waiting(f"reading the index at {uri} (at most {STORE_TIMEOUT_SECONDS:g}s a try)"):
            index = read_index(store)
    except StoreMissing as error:
        raise CommandError(f"{origin}: {error}") from None
    if index is not None:
        return index
    if isinstance(store, LocalStore):
        raise CommandError(
            f"no index file at {uri}: fix {origin}, or build one with "
            f"`python -m function build-index --manifests DIR --out {uri}`"
        )
    return None


def require_index(uri: str, origin: str = INDEX_FLAG) -> DigestIndex:
    index = load_index(uri, origin)
    if index is None:
        raise CommandError(
            f"no index at {uri} yet: the bucket exists but holds no such object. Fix {origin}, or publish one "
            f"(sync_index, or `python -m function build-index --manifests DIR --out {uri}`)"
        )
    return index


def check_host(index: DigestIndex, reference: str, frozen_prefixes: tuple[str, ...], what: str) -> None:
    """A host typed by a person must be one the index audits: a typo must never read as a clean IGNORED.

    ``reference`` is what was typed, host first."""
    host, _, rest = reference.partition("/")
    host = host.lower()
    hosts = index.registry_hosts()
    if host in hosts or any(prefix.split("/", 1)[0] == host for prefix in frozen_prefixes):
        return
    if host == PUBLIC_HOST:
        name = re.split(r"[:@]", rest, maxsplit=1)[0]
        destinations = sorted({d for p in index.promotions() if p.image.name == name for d in p.destinations})
        # The canonical region (where the promoter signs) first, as the example to give.
        canonical = [d for d in destinations if d.startswith("us-central1-")] or destinations
        example = f"{canonical[0]}/{rest}" if canonical else f"{nearest(host, hosts)}/..."
        raise CommandError(
            f"{what}: {PUBLIC_HOST} is the public name, which redirects to every destination; "
            f"`lookup {reference}` answers for all of them, and `audit` takes one destination's "
            f"reference, such as {example}"
        )
    raise CommandError(
        f"{what}: {host} is no registry of the index (nor under {FROZEN_PREFIXES_VARIABLE}); "
        f"did you mean {nearest(host, hosts)}?"
    )


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
