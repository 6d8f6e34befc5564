"""``build-index``: the rebuild ``sync_index`` does, from a local manifests folder."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from function.cli.common import (
    EXIT_ALARM,
    EXIT_OK,
    JSON,
    URI_HELP,
    CommandError,
    Commands,
    bounded,
    command_parser,
    log,
    open_index_store,
    show,
)
from function.errors import RETRYABLE
from function.github.webhook import is_commit_sha
from function.index import changes
from function.index.digests import Source
from function.index.pending import commit_time
from function.index.publish import DEFAULT_MAX_LOSS, Refused, check_loss, plan, rebuild
from function.index.resolve import DEFAULT_WORKERS
from function.registry.client import RegistryClient
from function.storage.base import IndexStore

EPILOG = """\
The build reuses what the index at --out already resolved, and refuses to publish (the index there is
kept) over an index from a newer commit, over one this version cannot read (unless --force), or when
more than --max-loss of the promoted digests would disappear.

exit codes:
  0   published (with --dry-run: would publish)
  1   refused: unreadable manifests, an older commit, too large a loss, an unreadable index at --out
  2   a bad argument, a missing manifests folder, bucket or folder of --out, or no access to Cloud
      Storage (credentials, IAM): fix it first
  75  published, but some manifest lists could not be resolved (run it again later); or Cloud
      Storage was unreachable

examples:
  python -m function build-index --manifests ~/k8s.io/registry.k8s.io --out gs://BUCKET/index.json.gz \\
      --commit "$(git -C ~/k8s.io rev-parse HEAD)" --committed-at "$(git -C ~/k8s.io show -s --format=%cI)"
  python -m function build-index --manifests ~/k8s.io/registry.k8s.io --out gs://BUCKET/index.json.gz --dry-run
"""


def add_parser(commands: Commands) -> None:
    parser = command_parser(
        commands, "build-index", summary="build the digest index from a manifests folder and publish it", epilog=EPILOG
    )
    parser.add_argument(
        "--manifests", required=True, metavar="DIR", help="the folder holding images/ and manifests/ (registry.k8s.io)"
    )
    parser.add_argument("--out", required=True, metavar="URI", help=f"where to publish: {URI_HELP}")
    parser.add_argument(
        "--offline", action="store_true", help="do not resolve manifest lists from the registries (default: resolve)"
    )
    parser.add_argument(
        "--commit", type=_commit, help="the k8s.io commit (40 lowercase hex) the manifests come from (default: none)"
    )
    parser.add_argument(
        "--committed-at",
        type=_instant,
        metavar="TIME",
        help="that commit's time, ISO 8601; an index is never replaced by one from an older commit (default: none)",
    )
    parser.add_argument(
        "--max-loss",
        type=bounded(float, 0.0, 1.0),
        default=DEFAULT_MAX_LOSS,
        metavar="SHARE",
        help="refuse to publish when more than this share (0..1) of the promoted digests would go "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=bounded(int, 1),
        default=DEFAULT_WORKERS,
        help="concurrent registry requests while resolving (default: %(default)s)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an index at --out that this version cannot read, such as a newer schema (default: refuse)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="show what would change per image and whether it would be refused; contact no registry, write nothing",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    manifests = _manifests_folder(args.manifests)
    store = open_index_store(args.out, "--out")
    source = Source(commit=args.commit, committed_at=args.committed_at, manifests=str(manifests))
    if args.dry_run:
        return _dry_run(manifests, store, source, args)
    try:
        published = rebuild(
            manifests,
            store,
            source=source,
            registry_factory=None if args.offline else RegistryClient,
            max_loss=args.max_loss,
            workers=args.workers,
            force=args.force,
            replace_unreadable=args.force,
        )
    except Refused as error:
        log.error("not published: %s", error)
        return EXIT_ALARM
    if args.format == JSON:
        counts = published.index.counts()
        show(
            orjson.dumps(
                {"uri": store.uri, "generation": published.generation, "changed": published.changed, "counts": counts}
            ).decode()
        )
    else:
        show(f"{store.uri}: {published.line()}")
    resolution = published.resolution
    if resolution is not None and resolution.failed:
        for line in resolution.errors:
            log.warning("unresolved: %s", line)
        return RETRYABLE.exit_code
    return EXIT_OK


def _dry_run(manifests: Path, store: IndexStore, source: Source, args: argparse.Namespace) -> int:
    try:
        planned = plan(manifests, store, source=source, force=args.force, replace_unreadable=args.force)
        if planned.previous is None:
            counts = planned.index.counts()
            there = "no index yet" if planned.stored is None else "an index this version cannot read (--force)"
            print(
                f"{store.uri} holds {there}: would publish {counts['digests']} digests of {counts['images']} "
                f"images in {counts['projects']} projects"
            )
        else:
            found = changes.compare(planned.previous, planned.index)
            print("\n".join(found.lines()) if not found.empty else f"no promoted image changes at {store.uri}")
        check_loss(planned.index, planned.previous, args.max_loss)
    except Refused as error:
        log.error("would not publish: %s", error)
        return EXIT_ALARM
    print("dry run: nothing was published")
    return EXIT_OK


def _manifests_folder(text: str) -> Path:
    folder = Path(text).expanduser()
    where = "the registry.k8s.io folder of a k8s.io checkout (it holds images/ and manifests/)"
    if not folder.is_dir():
        raise CommandError(f"--manifests {text}: no such folder; give {where}")
    if not (folder / "manifests").is_dir():
        raise CommandError(f"--manifests {text} holds no manifests/ folder; give {where}")
    return folder


def _commit(text: str) -> str:
    if not is_commit_sha(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a full commit SHA (40 lowercase hex); give `git rev-parse HEAD` of the checkout"
        )
    return text


def _instant(text: str) -> str:
    try:
        commit_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time; give `git show -s --format=%cI` of the commit"
        ) from None
    return text
