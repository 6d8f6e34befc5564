"""``lookup``: what the index says about an image name, a digest or a full reference."""

from __future__ import annotations

import argparse
import textwrap

import orjson

from function.cli.common import (
    EXIT_ALARM,
    EXIT_OK,
    JSON,
    CommandError,
    Commands,
    add_index_option,
    check_host,
    command_parser,
    require_index,
    show,
)
from function.errors import RETRYABLE
from function.index.lookup import IMAGE, AmbiguousDigest, Entry, Findings, Match, host_of, lookup
from function.reference import InvalidReference
from function.settings import Settings

EPILOG = """\
TERM is one of:
  an image name (pause, or kubernetes/foo): every path it is promoted to, with its digests and tags
  the public name (registry.k8s.io/pause:3.10, registry.k8s.io/pause@sha256:..., or pause:3.10): the
      digests it is promoted with, at every destination
  a digest (sha256:..., or its first 6 or more hex as `audit --format table` shows it): which
      images promote it, with which tags, or whose platform child it is
  a reference (HOST/PATH, HOST/PATH:TAG or HOST/PATH@sha256:...): whether it is promoted there; a
      cosign tag (sha256-<hex>.sig, .att, .sbom) stands for its subject sha256:<hex>

The first line is the answer; a digest that is not listed while lists of that image are not resolved
yet is never called "not promoted": it may be their platform child (exit 75).

exit codes:
  0   found in the index
  1   not promoted (the text says what is known instead), or the index is unreadable
  2   a bad argument or TERM (a host that is no registry of the index, an ambiguous digest prefix), no
      index at the URI (missing bucket, folder, file or object), or no access to Cloud Storage: fix it first
  75  undecided: the digest may be a child of a list the index has not resolved; or Cloud Storage was
      unreachable: try again

examples:
  python -m function lookup --index gs://BUCKET/index.json.gz registry.k8s.io/pause:3.10
  python -m function lookup --index gs://BUCKET/index.json.gz --json sha256:<64 hex>
  python -m function lookup --index gs://BUCKET/index.json.gz \\
      us-central1-docker.pkg.dev/k8s-artifacts-prod/images/pause:3.9
"""

# The widest line a person is shown; longer cells are cut.
WIDTH = 120


def add_parser(commands: Commands) -> None:
    parser = command_parser(
        commands,
        "lookup",
        summary="show where an image or digest is promoted, with its tags, parent or children",
        epilog=EPILOG,
    )
    add_index_option(parser)
    parser.add_argument("term", metavar="TERM", help="an image name, a public name, a digest, or a full reference")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    index = require_index(args.index, args.index_origin)
    if host_of(args.term) is not None:
        check_host(index, args.term.strip(), Settings.from_environment().frozen_prefixes, f"TERM {args.term!r}")
    try:
        findings = lookup(index, args.term)
    except InvalidReference as error:
        raise CommandError(f"TERM {args.term!r}: {error}") from None
    except AmbiguousDigest as error:
        raise CommandError(f"TERM {args.term!r}: {error}") from None
    show(orjson.dumps(findings.as_dict()).decode() if args.format == JSON else text(findings))
    if findings.undecided:
        return RETRYABLE.exit_code
    return EXIT_OK if findings.found else EXIT_ALARM


def text(findings: Findings) -> str:
    # Sentences wrap; rows (paths, digests) are cut, so that each stays one line.
    prose = [answer(findings), *([findings.about] if findings.about else [])]
    flat = [textwrap.fill(line, WIDTH, subsequent_indent="  ", break_on_hyphens=False) for line in prose]
    flat += [_cut(line) for match in findings.matches for line in _match_lines(match)]
    return "\n".join(flat)


def answer(findings: Findings) -> str:
    """The first line: what the term is, in a word, and why."""
    if findings.undecided:
        return f"UNDECIDED: {findings.note}"
    if not findings.found:
        return f"NOT PROMOTED: {findings.note}"
    paths = {path for match in findings.matches for path in match.promotion.paths}
    if findings.kind == IMAGE:
        images = ", ".join(sorted({m.promotion.image.name for m in findings.matches}))
        return f"PROMOTED: {images} at {len(paths)} paths"
    digests = sorted({entry.digest for match in findings.matches for entry in match.entries})
    shown = ", ".join(digests[:2]) + (f" and {len(digests) - 2} more" if len(digests) > 2 else "")
    what = sorted({_as(match.promotion.image.name, entry) for match in findings.matches for entry in match.entries})
    return f"PROMOTED: {shown} as {', '.join(what[:4])}{' ...' if len(what) > 4 else ''} at {len(paths)} paths"


def _as(image: str, entry: Entry) -> str:
    named = f"{image}:{','.join(entry.tags)}" if entry.tags else f"{image} (untagged)"
    return named if entry.parent is None else f"a platform child of {named}"


def _match_lines(match: Match) -> list[str]:
    promotion = match.promotion
    paths = promotion.paths
    listed = sum(entry.parent is None for entry in match.entries)
    counted = f"of its {len(promotion.image.digests)} digests"
    if listed:
        heading = f"  {listed} {counted}, in tag-version order:"
    elif match.entries:
        heading = f"  a platform child of {len(match.entries)} {counted}:"
    else:
        heading = f"  none {counted} is the one asked for"
    lines = [
        f"{promotion.image.name} (project {promotion.project}, staged at {promotion.staging or 'unknown'})",
        *_paths(paths),
        heading,
    ]
    width = max((len(_tags(entry)) for entry in match.entries if entry.parent is None), default=0)
    for entry in match.entries:
        if entry.parent is not None:
            # The parent in full on a line of its own: it is what an operator copies next.
            lines.append(f"    {entry.digest}  {entry.platform or '(no platform named)'}")
            lines.append(f"      child of {entry.parent} ({', '.join(entry.tags) or 'untagged'})")
            continue
        lines.append(f"    {entry.digest}  {_tags(entry).ljust(width)}  {_kind(entry)}".rstrip())
        # One entry (a digest or reference looked up) is worth its children in full.
        if len(match.entries) == 1 and entry.children:
            named = zip(entry.children, entry.platforms, strict=True)
            lines += [f"      {child}  {platform}".rstrip() for child, platform in named]
    return lines


def _paths(paths: list[str]) -> list[str]:
    """Every path, or, where each repository is at the same registry hosts (the regions of k8s-artifacts-prod),
    the repositories once and the hosts once."""
    hosts: dict[str, list[str]] = {}
    for path in paths:
        host, _, repository = path.partition("/")
        hosts.setdefault(repository, []).append(host)
    spread = {tuple(each) for each in hosts.values()}
    if len(paths) <= 4 or len(spread) != 1:
        return [f"  promoted to {len(paths)} paths:", *(f"    {path}" for path in paths)]
    [common] = spread
    suffix = "-docker.pkg.dev"
    if all(host.endswith(suffix) for host in common):
        where = f"REGION{suffix}, REGION one of: " + ", ".join(host.removesuffix(suffix) for host in common)
    else:
        where = ", ".join(common)
    return [
        f"  promoted to {len(paths)} paths, {len(hosts)} repositories at each of {len(common)} registry hosts:",
        *(f"    HOST/{repository}" for repository in hosts),
        *textwrap.wrap(
            f"HOST: {where}", WIDTH, initial_indent="    ", subsequent_indent="      ", break_on_hyphens=False
        ),
    ]


def _tags(entry: Entry) -> str:
    return ", ".join(entry.tags) if entry.tags else "(untagged)"


def _kind(entry: Entry) -> str:
    if entry.children is None:
        return "not resolved yet"
    if not entry.children:
        return "single manifest"
    return f"manifest list of {len(entry.children)} platforms"


def _cut(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"
