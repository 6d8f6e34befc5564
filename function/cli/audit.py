"""``audit``: decide event payloads from stdin, or references given as arguments, as the function would."""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import cast

import orjson

from function import verdict as v
from function.auditor import Auditor
from function.cli.common import (
    EXIT_ALARM,
    EXIT_OK,
    LINES,
    TABLE,
    CommandError,
    Commands,
    add_index_option,
    check_host,
    command_parser,
    load_index,
    log,
    show,
    silence_stdout,
    verdict_output,
    waiting,
)
from function.cli.replay import Replay
from function.cli.replay import read as read_replay
from function.errors import RETRYABLE
from function.index.digests import DigestIndex, InvalidIndex
from function.index.freshness import HeldIndex, PendingWatch
from function.index.pending import PendingCommits
from function.index.source import NoIndex
from function.reference import InvalidReference, parse_reference
from function.registry.client import RegistryClient
from function.settings import Settings
from function.signatures import SigningPolicy
from function.storage.errors import StoreDenied, StoreError, StoreMissing
from function.storage.uri import open_store
from function.table import render_verdicts
from function.verdict import Verdict

EPILOG = """\
Without REFERENCE, reads event payloads from stdin, one JSON object per line, as the registry publishes
them: {"action": "INSERT"|"DELETE", "digest": "HOST/PATH@sha256:...", "tag": "HOST/PATH:TAG"}.
Each REFERENCE (HOST/PATH@sha256:..., HOST/PATH:TAG or HOST/PATH:TAG@sha256:...) is audited as an INSERT
of it. Registries are asked only about true misses, as the audit function does, and the function's
settings apply: AUDITOR_FROZEN_PREFIXES (default: none), AUDITOR_DEADLINE_SECONDS per decision (default:
50), and AUDITOR_PENDING_GRACE_SECONDS (default: 1800): while sync_index has accepted a newer commit than
the index's for less than that, a would-be REJECTED (other than a deletion or a frozen change) is RETRY
"index behind". AUDITOR_PARENT_WAIT_SECONDS (default: 600): an untagged child whose listed list is in no
repository yet is RETRY "parent not yet pushed" for that long from when its payload is read here.

A REFERENCE's host must be a registry of the index (or under AUDITOR_FROZEN_PREFIXES): a typo exits 2
naming the nearest one, where a payload on stdin would be IGNORED. registry.k8s.io is the public name of
every destination: give a destination's reference (or `lookup registry.k8s.io/NAME:TAG`).

--replay reads past verdict lines from stdin (JSON lines, or the JSON array `gcloud logging read
--format=json` writes, each line in its jsonPayload), audits each event again with today's code and index,
and writes the new verdict line of each event whose verdict or reason changed (every event with --all),
with "previous": {"verdict", "reason", "index"} of the old line. Other lines are skipped and counted.

exit codes:
  (with --replay, over the new verdicts of every event read)
  0   every verdict is VERIFIED or IGNORED
  1   any verdict is REJECTED or MALFORMED (whatever else there is: an alarm is never masked)
  2   a bad argument or REFERENCE, a missing bucket, folder or index file, or no access to Cloud
      Storage (credentials, IAM): fix it first
  75  any verdict is RETRY and none is REJECTED or MALFORMED: a registry or storage fault, try again

examples:
  python -m function audit --index gs://BUCKET/index.json.gz --format table \\
      us-central1-docker.pkg.dev/k8s-artifacts-prod/images/pause:3.9
  python -m function audit --index gs://BUCKET/index.json.gz < payloads.jsonl
  gcloud logging read 'jsonPayload.verdict="REJECTED" AND timestamp>="2026-12-04T00:00:00Z"' \\
      --format=json | python -m function audit --index gs://BUCKET/index.json.gz --replay
"""


def add_parser(commands: Commands) -> None:
    parser = command_parser(
        commands,
        "audit",
        summary="decide registry events against the digest index",
        epilog=EPILOG,
        default_format=LINES,
    )
    add_index_option(parser)
    parser.add_argument(
        "references", nargs="*", metavar="REFERENCE", help="an image reference to audit as an INSERT of it"
    )
    parser.add_argument(
        "--replay",
        action="store_true",
        help="re-audit the events of past verdict lines read from stdin; write those whose verdict changed",
    )
    parser.add_argument(
        "--all", dest="replay_all", action="store_true", help="with --replay: write every event's new line"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.replay_all and not args.replay:
        raise CommandError("--all goes with --replay")
    if args.replay and args.references:
        raise CommandError("--replay reads past verdict lines from stdin: give no REFERENCE with it")
    settings = Settings.from_environment()
    try:
        index = load_index(args.index, args.index_origin)
        problem = f"no digest index at {args.index} yet"
    except (StoreMissing, StoreDenied):
        raise  # no retry cures a missing bucket or missing credentials: exit 2
    except (StoreError, InvalidIndex) as error:
        index, problem = None, str(error)
    if args.replay:
        replay = read_replay(sys.stdin.buffer.read())
    else:
        payloads: Iterable[bytes | str] = (
            [_payload(text, index, settings) for text in args.references] if args.references else _stdin()
        )
    write, finish = verdict_output(args.format)
    if index is None:
        # Still one verdict line per payload: malformed ones are decided, the rest wait for an index.
        log.error("%s: every well-formed event is left open (RETRY)", problem)
        auditor = Auditor(NoIndex(problem), frozen_prefixes=settings.frozen_prefixes)
    else:
        auditor = _auditor(index, args.index, settings)
    if args.replay:
        return _replay(auditor.audit_payload, replay, args.format, every=args.replay_all)
    decide = _saying(auditor.audit_payload) if args.references else auditor.audit_payload
    code = audit_all(decide, payloads, write)
    finish()
    return code


def _saying(decide: Callable[[bytes | str], Verdict]) -> Callable[[bytes | str], Verdict]:
    """A person waiting on a REFERENCE is told when its decision waits on the registries (a true miss)."""

    def deciding(raw: bytes | str) -> Verdict:
        event = orjson.loads(raw)  # written by _payload
        with waiting(f"asking the registries about {event.get('digest') or event.get('tag')}"):
            return decide(raw)

    return deciding


def _replay(decide: Callable[[bytes | str], Verdict], replay: Replay, form: str, *, every: bool) -> int:
    if replay.skipped:
        log.warning("skipped %d lines that are no verdict line of a registry event", replay.skipped)
    seen: set[str] = set()
    changed: list[dict[str, object]] = []
    for past in replay.events:
        verdict = decide(past.payload)
        seen.add(verdict.verdict)
        if not every and (verdict.verdict, verdict.reason) == (past.previous["verdict"], past.previous["reason"]):
            continue
        line = {**verdict.fields(), "previous": past.previous}
        if form == TABLE:
            changed.append(line)
        else:
            try:
                print(v.json_line(line, verdict.severity), flush=True)
            except BrokenPipeError:
                silence_stdout()
                break
    if form == TABLE:
        show(render_verdicts(changed).rstrip("\n"))
    return exit_code(seen)


def _auditor(index: DigestIndex, uri: str, settings: Settings) -> Auditor:
    # AUDITOR_DEADLINE_SECONDS and AUDITOR_PENDING_GRACE_SECONDS are read as the audit function reads
    # them: each payload's decision is bounded from the moment it was read, and a would-be REJECTED waits
    # (RETRY index behind) while sync_index is publishing a newer commit, so a laptop raises no alarm
    # the function would hold back.
    deadline = settings.deadline_seconds
    # Bounded as the function bounds its store, so that reading the records leaves the decision time to finish.
    store = open_store(uri, timeout=deadline / 3, retry_timeout=deadline / 3)
    pending = PendingWatch(PendingCommits.beside(store), grace_seconds=settings.pending_grace_seconds)
    return Auditor(
        HeldIndex(index, pending),
        RegistryClient(index.registry_hosts()),
        frozen_prefixes=settings.frozen_prefixes,
        deadline_seconds=deadline,
        # A list not yet pushed is waited for from when each payload is read (the CLI has no publish time).
        parent_wait_seconds=settings.parent_wait_seconds,
        signing=SigningPolicy.from_settings(settings),
    )


def audit_all(
    decide: Callable[[bytes | str], Verdict], payloads: Iterable[bytes | str], write: Callable[[Verdict], None]
) -> int:
    seen: set[str] = set()
    for raw in payloads:
        if not raw.strip():
            continue
        verdict = decide(raw)
        try:
            write(verdict)
        except BrokenPipeError:
            # The reader went away (`| head`): stop, with the exit code of what it was shown.
            silence_stdout()
            break
        seen.add(verdict.verdict)
    return exit_code(seen)


def exit_code(verdicts: set[str]) -> int:
    """An alarm wins over a retry: a script that retries on 75 must not miss a REJECTED."""
    if verdicts & {v.Kind.REJECTED, v.Kind.MALFORMED}:
        return EXIT_ALARM
    if v.Kind.RETRY in verdicts:
        return RETRYABLE.exit_code
    return EXIT_OK


def _payload(text: str, index: DigestIndex | None, settings: Settings) -> str:
    """The event payload of an INSERT of the reference ``text``."""
    try:
        reference = parse_reference(text)
    except InvalidReference as error:
        raise CommandError(f"REFERENCE {text!r}: {error}") from None
    if index is not None:
        check_host(index, text.strip(), settings.frozen_prefixes, f"REFERENCE {text!r}")
    if reference.digest is None and reference.tag is None:
        raise CommandError(f"REFERENCE {text!r} names neither a tag nor a digest: add :TAG or @sha256:...")
    event: dict[str, str] = {"action": "INSERT"}
    if reference.digest is not None:
        event["digest"] = f"{reference.path}@{reference.digest}"
    if reference.tag is not None:
        event["tag"] = f"{reference.path}:{reference.tag}"
    return orjson.dumps(event).decode()


def _stdin() -> Iterator[bytes]:
    if sys.stdin.isatty():
        log.warning("reading event payloads from the terminal, one JSON per line; end with Ctrl-D (or give REFERENCEs)")
    # typeshed types it BinaryIO; a process's (and run_cli's) stdin buffer is buffered, with read1.
    return _lines_flushing_before_each_wait(cast(io.BufferedIOBase, sys.stdin.buffer))


def _lines_flushing_before_each_wait(source: io.BufferedIOBase) -> Iterator[bytes]:
    """The lines of ``source`` as bytes, as the function receives them (a line that is not UTF-8 is
    MALFORMED, not a crash); the verdicts written so far are flushed before each read that may wait.

    A live reader (a pipe from a subscription) sees each verdict as soon as its input is decided, and a
    file is not flushed line by line: that cost a fifth of a 20,000-line run."""
    partial: list[bytes] = []  # the start of a line longer than the chunks read so far
    while True:
        sys.stdout.flush()
        chunk = source.read1(1 << 16)
        if not chunk:
            break
        end = chunk.rfind(b"\n") + 1
        if end:
            yield from io.BytesIO(b"".join([*partial, chunk[:end]]))
            partial = []
        if end < len(chunk):
            partial.append(chunk[end:])
    if partial:
        yield b"".join(partial)
