"""``lookup``: what the index says about an image name, a digest or a full reference."""

from __future__ import annotations

import argparse

import orjson

from function.cli.common import (
    EXIT_ALARM,
    EXIT_OK,
    CommandError,
    Commands,
    add_index_option,
    command_parser,
    require_index,
)
from function.index.lookup import Entry, Findings, Match, lookup
from function.reference import InvalidReference

EPILOG = """\
TERM is one of:
  an image name (pause, or kubernetes/foo): every path it is promoted to, with its digests and tags
  a digest (sha256:..., or its first 6 or more hex as `audit --format table` shows it): which
      images promote it, with which tags, or whose platform child it is
  a reference (HOST/PATH, HOST/PATH:TAG or HOST/PATH@sha256:...): whether it is promoted there; a
      cosign tag (sha256-<hex>.sig, .att, .sbom) stands for its subject sha256:<hex>

exit codes:
  0   found in the index
  1   not in the index (the text says what is known instead), or the index is unreadable
  2   a bad argument or TERM, no index at the URI (missing bucket, folder, file or object), or no
      access to Cloud Storage (credentials, IAM): fix it first
  75  Cloud Storage was unreachable: try again

examples:
  python -m function lookup --index gs://BUCKET/index.json.gz pause
  python -m function lookup --index gs://BUCKET/index.json.gz --json sha256:<64 hex>
  python -m function lookup --index gs://BUCKET/index.json.gz \\
      us-central1-docker.pkg.dev/k8s-artifacts-prod/images/pause:3.9
"""


def add_parser(commands: Commands) -> None:
    parser = command_parser(
        commands,
        "lookup",
        summary="show where an image or digest is promoted, with its tags, parent or children",
        epilog=EPILOG,
    )
    add_index_option(parser)
    parser.add_argument("term", metavar="TERM", help="an image name, a digest, or a full reference")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text (default: text)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    index = require_index(args.index)
    try:
        findings = lookup(index, args.term)
    except InvalidReference as error:
        raise CommandError(f"TERM {args.term!r}: {error}") from None
    print(orjson.dumps(findings.as_dict()).decode() if args.json else text(findings))
    return EXIT_OK if findings.found else EXIT_ALARM


def text(findings: Findings) -> str:
    lines = [_match_lines(match) for match in findings.matches]
    flat = [findings.about] if findings.about else []
    flat += [line for block in lines for line in block]
    if findings.note:
        flat.append(f"not found: {findings.note}")
    return "\n".join(flat)


def _match_lines(match: Match) -> list[str]:
    promotion = match.promotion
    paths = promotion.paths
    lines = [
        f"{promotion.image.name} (project {promotion.project}, staged at {promotion.staging or 'unknown'})",
        f"  promoted to {len(paths)} paths:",
        *(f"    {path}" for path in paths),
        f"  {len(match.entries)} of its {len(promotion.image.digests)} digests:",
    ]
    width = max((len(_tags(entry)) for entry in match.entries), default=0)
    for entry in match.entries:
        lines.append(f"    {entry.digest}  {_tags(entry).ljust(width)}  {_kind(entry)}".rstrip())
        # One entry (a digest or reference looked up) is worth its children in full.
        if len(match.entries) == 1 and entry.children:
            lines += [f"      {child}" for child in entry.children]
    return lines


def _tags(entry: Entry) -> str:
    if entry.parent is not None:
        return "-"
    return ", ".join(entry.tags) if entry.tags else "(untagged)"


def _kind(entry: Entry) -> str:
    if entry.parent is not None:
        return f"platform child of {entry.parent} ({', '.join(entry.tags) or 'untagged'})"
    if entry.children is None:
        return "not resolved yet"
    if not entry.children:
        return "single manifest"
    return f"manifest list of {len(entry.children)} platforms"
