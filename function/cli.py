"""``python -m function``: the functions' code on a laptop.

Exit codes: 0 success (audit: every verdict VERIFIED or IGNORED); 1 an alarm or a refused build
(audit: any REJECTED or MALFORMED); 2 usage; 75 (EX_TEMPFAIL) a fault that left work undone (audit:
any RETRY), worth running again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Callable, Iterable, Sequence

import orjson

from function import verdict as v
from function.auditor import Auditor, without_index
from function.index.digests import DigestIndex, InvalidIndex, Source
from function.index.publish import DEFAULT_MAX_LOSS, Refused, read_index, rebuild
from function.index.store import IndexStore, StoreError, open_store
from function.registry.client import RegistryClient
from function.sweep import command as sweep_command
from function.verdict import Verdict

EXIT_OK = 0
EXIT_ALARM = 1
EXIT_USAGE = 2
EXIT_TEMPFAIL = 75

log = logging.getLogger("function")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # Progress and problems go to stderr; stdout carries only results (verdict lines, stats).
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    try:
        code: int = args.run(args)
    except UsageError as error:
        parser.error(str(error))
    except (StoreError, InvalidIndex) as error:
        log.error("%s", error)
        return EXIT_TEMPFAIL if isinstance(error, StoreError) else EXIT_ALARM
    return code


class UsageError(Exception):
    """A command line that names something this tool cannot use."""


def _open(uri: str) -> IndexStore:
    try:
        return open_store(uri)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m function", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    build = commands.add_parser("build-index", help="build the digest index from a manifests folder")
    build.add_argument("--manifests", required=True, help="folder holding images/ and manifests/")
    build.add_argument("--out", required=True, help="gs://bucket/object or a local path")
    build.add_argument("--offline", action="store_true", help="do not resolve manifest lists from registries")
    build.add_argument("--commit", help="k8s.io commit the manifests come from, recorded in the index")
    build.add_argument(
        "--committed-at", help="that commit's time (ISO 8601); an index is never replaced by one from an older commit"
    )
    build.add_argument(
        "--max-loss",
        type=float,
        default=DEFAULT_MAX_LOSS,
        help="refuse to publish when more than this share of promoted digests would go",
    )
    build.add_argument("--workers", type=int, default=8, help="concurrent registry requests")
    build.set_defaults(run=_build_index)

    audit = commands.add_parser("audit", help="decide event payloads read from stdin, one JSON per line")
    audit.add_argument("--index", required=True, help="gs://bucket/object or a local path")
    audit.set_defaults(run=_audit)

    stats = commands.add_parser("stats", help="counts and freshness of an index")
    stats.add_argument("--index", required=True, help="gs://bucket/object or a local path")
    stats.add_argument("--json", action="store_true", help="one JSON object instead of text")
    stats.set_defaults(run=_stats)

    sweep_command.register(commands)
    return parser


def _build_index(args: argparse.Namespace) -> int:
    store = _open(args.out)
    source = Source(commit=args.commit, committed_at=args.committed_at, manifests=args.manifests)
    try:
        published = rebuild(
            args.manifests,
            store,
            source=source,
            registry_factory=None if args.offline else RegistryClient,
            max_loss=args.max_loss,
            workers=args.workers,
        )
    except Refused as error:
        log.error("not published: %s", error)
        return EXIT_ALARM
    print(f"{store.uri}: {published.line()}")
    resolution = published.resolution
    if resolution is not None and resolution.failed:
        for line in resolution.errors:
            log.warning("unresolved: %s", line)
        return EXIT_TEMPFAIL
    return EXIT_OK


def _load(uri: str) -> DigestIndex | None:
    loaded = read_index(_open(uri))
    if loaded is None:
        log.error("no digest index at %s: build one with `python -m function build-index`", uri)
        return None
    return loaded[0]


def _audit(args: argparse.Namespace) -> int:
    logger = v.verdict_logger(sys.stdout)
    try:
        index = _load(args.index)
        problem = f"no digest index at {args.index}"
    except (StoreError, InvalidIndex) as error:
        index, problem = None, str(error)
    if index is None:
        # Still one verdict line per payload: malformed ones are decided, the rest wait for an index.
        log.error("%s: every well-formed event is left open (RETRY)", problem)
        return audit_stream(lambda line: without_index(line, problem), sys.stdin, logger)
    auditor = Auditor(index, RegistryClient(index.registry_hosts()))
    return audit_stream(auditor.audit_payload, sys.stdin, logger)


def audit_stream(decide: Callable[[str], Verdict], lines: Iterable[str], logger: logging.Logger) -> int:
    seen: set[str] = set()
    for line in lines:
        if not line.strip():
            continue
        verdict = decide(line)
        v.emit(logger, verdict)
        seen.add(verdict.verdict)
    if v.RETRY in seen:
        return EXIT_TEMPFAIL
    if seen & {v.REJECTED, v.MALFORMED}:
        return EXIT_ALARM
    return EXIT_OK


def _stats(args: argparse.Namespace) -> int:
    index = _load(args.index)
    if index is None:
        return EXIT_ALARM
    age = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(index.built_at)
    counts = index.counts()
    if args.json:
        report = {
            "built_at": index.built_at,
            "age_seconds": int(age.total_seconds()),
            "source": index.source.as_dict(),
            "counts": counts,
            "problems": index.problems,
        }
        print(orjson.dumps(report).decode())
        return EXIT_OK
    source = index.source
    print(f"built at       {index.built_at} ({age.total_seconds() / 3600:.1f} h ago)")
    print(f"source commit  {source.commit or 'unknown'} ({source.committed_at or 'time unknown'})")
    for key, value in counts.items():
        print(f"{key:<14} {value}")
    for problem in index.problems:
        print(f"problem        {problem}")
    return EXIT_OK
