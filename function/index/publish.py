"""Rebuilding and publishing the digest index: shared by ``sync_index`` and ``build-index``.

The published index is only ever replaced by one that (a) parsed without a fatal problem, (b) passes the
caller's order guard (``sync_index`` asks k8s.io's history, ``function.github.compare``; the CLI compares
commit times, ``by_commit_time``), (c) does not lose a large share of the promoted digests, and (d)
differs from it. It is written with a generation precondition: of two concurrent syncs the loser
re-reads, keeps the winner's resolutions and tries again under the same guards, or stands down."""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from function.index import changes, manifests
from function.index.digests import DigestIndex, InvalidIndex, Source
from function.index.pending import commit_time
from function.index.resolve import DEFAULT_WORKERS, Summary, resolve
from function.registry.client import ManifestSource
from function.storage.base import IndexStore, Stored
from function.storage.errors import GenerationMismatch

log = logging.getLogger(__name__)

# An index that would drop more than this share of the promoted digests is refused: manifests are
# append-only in practice, and a broken checkout would otherwise silence the auditor for everything.
DEFAULT_MAX_LOSS = 0.10
WRITE_ATTEMPTS = 5
# More unresolved digests than this (a first online build resolves ~20,000) are resolved in rounds of this
# many, publishing after each, so the auditor has the offline index at once and every round's progress is
# kept even when the request ends before the last round.
ROUND_SIZE = 500

RegistryFactory = Callable[[frozenset[str]], ManifestSource]


class Refused(Exception):
    """The new index was not published; the one in the store stays. The message says why."""


class Superseded(Refused):
    """Refused because the published index comes from a later commit than the one rebuilt."""


class Diverged(Refused):
    """Refused because the rebuilt commit and the published one are on different histories: neither
    contains the other (a force-push, or a commit of another branch). Someone must look."""


OrderGuard = Callable[[Source, Source], None]
"""Called with the published index's source and the rebuilt one; raises ``Refused`` (``Superseded``,
``Diverged``) when the rebuilt index may not replace the published one, or a ``Retryable`` error when
that cannot be decided now (nothing is published)."""


@dataclass(frozen=True, slots=True)
class Round:
    """One round of resolution and what became of it, for progress lines."""

    number: int
    summary: Summary
    remaining: int
    generation: int | None

    def line(self) -> str:
        published = f"published as generation {self.generation}" if self.generation else "nothing new to publish"
        return f"round {self.number}: {self.summary.line()}; {self.remaining} still to resolve; {published}"


@dataclass(slots=True)
class Published:
    index: DigestIndex
    generation: int
    carried: int
    resolution: Summary | None
    previous_digests: int
    changed: bool = True
    """False when the store already held exactly this index: nothing was written."""
    rounds: list[Round] = field(default_factory=list)
    remaining: int = 0
    """Unresolved digests left for a later sync because the time budget ran out."""

    def line(self) -> str:
        counts = self.index.counts()
        if not self.changed:
            return (
                f"unchanged: generation {self.generation} already holds these {counts['digests']} digests of "
                f"{counts['images']} images ({counts['unresolved']} unresolved); nothing written"
            )
        text = (
            f"published {counts['digests']} digests of {counts['images']} images in {counts['projects']} "
            f"projects (was {self.previous_digests}); {counts['resolved']} resolved, {counts['unresolved']} "
            f"unresolved, {self.carried} resolutions reused; generation {self.generation}"
        )
        if self.resolution is not None:
            text += f"; {self.resolution.line()}"
        if self.rounds:
            text += f"; in {len(self.rounds)} rounds"
        if self.remaining:
            text += f"; {self.remaining} left for the next sync (time budget used up)"
        return text


def read_index(store: IndexStore) -> DigestIndex | None:
    """The published index, its ``generation`` set, or None when nothing is published yet."""
    stored = store.read()
    if stored is None:
        return None
    return DigestIndex.from_json(stored.data, generation=stored.generation)


@dataclass(frozen=True, slots=True)
class Plan:
    """A freshly built index, and the published one it would replace (None: nothing readable is there)."""

    index: DigestIndex
    previous: DigestIndex | None
    stored: Stored | None
    target: _Target


def plan(
    root: str | os.PathLike[str],
    store: IndexStore,
    *,
    source: Source,
    force: bool = False,
    replace_unreadable: bool = True,
    max_loss: float = DEFAULT_MAX_LOSS,
    order: OrderGuard | None = None,
) -> Plan:
    """Build the index of the manifests at ``root`` on top of the published one, without publishing it.

    Refuses a fatal manifest problem, a commit that ``order`` (default ``by_commit_time``) does not let
    replace the published one (unless ``force``), and (unless ``replace_unreadable``) a published index
    this version cannot read, such as a newer schema."""
    if source.committed_at:
        _instant(source.committed_at)  # refuse an unreadable commit time before any work
    manifest_set = manifests.load(root)
    for problem in manifest_set.problems:
        log.warning("manifest problem: %s", problem)
    if manifest_set.fatal:
        raise Refused(
            f"{len(manifest_set.fatal)} manifest files could not be read ({manifest_set.fatal[0]}); "
            "the published index is kept"
        )
    target = _Target(
        store,
        source,
        order=None if force else order or by_commit_time,
        max_loss=max_loss,
        replace_unreadable=replace_unreadable,
    )
    index = DigestIndex.build(manifest_set, source=source, previous=target.previous)
    return Plan(index, target.previous, target.stored, target)


def rebuild(
    root: str | os.PathLike[str],
    store: IndexStore,
    *,
    source: Source,
    registry_factory: RegistryFactory | None = None,
    max_loss: float = DEFAULT_MAX_LOSS,
    workers: int = DEFAULT_WORKERS,
    force: bool = False,
    replace_unreadable: bool = True,
    round_size: int = ROUND_SIZE,
    budget_seconds: float | None = None,
    progress: Callable[[Round], None] | None = None,
    order: OrderGuard | None = None,
) -> Published:
    """Build the index of the manifests at ``root`` on top of the published one, and publish it.

    ``order`` is the commit-order guard (default ``by_commit_time``); ``force`` skips it (a person
    rebuilding by hand, knowingly);
    ``replace_unreadable`` lets an index this version cannot read be replaced (the sync's default; the CLI
    only with --force). ``budget_seconds`` bounds the resolution rounds; what is left stays unresolved
    for the next sync (the auditor also resolves on a miss). ``progress`` hears of every round."""
    planned = plan(
        root,
        store,
        source=source,
        force=force,
        replace_unreadable=replace_unreadable,
        max_loss=max_loss,
        order=order,
    )
    target, index, previous = planned.target, planned.index, planned.previous
    published = Published(
        index,
        target.generation or 0,
        carried=len(index.manifests),
        resolution=None,
        previous_digests=len(previous.promoted_digests()) if previous else 0,
        changed=False,
    )
    unresolved = index.to_resolve()
    if registry_factory is not None and unresolved:
        registry = registry_factory(index.registry_hosts())
        if previous is not None and len(unresolved) <= round_size:
            published.index, published.resolution = resolve(index, registry, workers=workers, progress=_report_progress)
        else:
            _in_rounds(published, target, registry, unresolved, workers, round_size, budget_seconds, progress)
            return published
    target.publish(published)
    return published


def _in_rounds(
    published: Published,
    target: _Target,
    registry: ManifestSource,
    unresolved: list[str],
    workers: int,
    round_size: int,
    budget_seconds: float | None,
    progress: Callable[[Round], None] | None,
) -> None:
    """Publish the index as it is, then resolve ``unresolved`` a round at a time, publishing after each."""
    started = time.monotonic()
    target.publish(published)
    published.resolution = Summary()
    chunks = [unresolved[i : i + round_size] for i in range(0, len(unresolved), round_size)]
    for number, chunk in enumerate(chunks, start=1):
        if budget_seconds is not None and time.monotonic() - started > budget_seconds:
            published.remaining = sum(len(c) for c in chunks[number - 1 :])
            log.warning("resolution stopped after %d rounds: %d digests left", number - 1, published.remaining)
            return
        published.index, summary = resolve(
            published.index, registry, workers=workers, progress=_report_progress, only=chunk
        )
        published.resolution.add(summary)
        generation = target.publish(published) if summary.resolved else None
        done = Round(number, summary, sum(len(c) for c in chunks[number:]), generation)
        published.rounds.append(done)
        if progress is not None:
            progress(done)
        else:
            log.info("resolving: %s", done.line())


class _Target:
    """The store as this rebuild last read it; every write re-checks the guards against what is there."""

    def __init__(
        self,
        store: IndexStore,
        source: Source,
        *,
        order: OrderGuard | None,
        max_loss: float,
        replace_unreadable: bool,
    ) -> None:
        self.store = store
        self.source = source
        self.order = order
        self.max_loss = max_loss
        self.replace_unreadable = replace_unreadable
        self._reread()

    def _reread(self) -> None:
        stored = self.store.read()
        self.stored = stored
        self.generation = stored.generation if stored else None
        self.previous = _previous(stored, self.store.uri, replace_unreadable=self.replace_unreadable)
        self._stored = _Stored.of(self.previous)
        if self.previous is not None and self.order is not None:
            self.order(self.previous.source, self.source)

    def publish(self, published: Published) -> int | None:
        """Write ``published.index`` unless the store holds it already; the new generation, or None."""
        for _ in range(WRITE_ATTEMPTS):
            index = published.index
            if self.generation is not None and self._stored is not None and self._stored.holds(index):
                published.generation = self.generation
                return None
            check_loss(index, self.previous, self.max_loss)
            try:
                generation = self.store.write(index.to_json(), if_generation=self.generation)
            except GenerationMismatch:
                # Another sync published first: keep what it resolved, and stand down if it is newer.
                self._reread()
                if self.previous is not None:
                    published.index, carried = index.carrying(self.previous)
                    published.carried += carried
                continue
            # What is stored now is this index as it is now (later rounds add to it): compare with that.
            self.generation, self.previous, self._stored = generation, index, _Stored.of(index)
            published.generation, published.changed = generation, True
            return generation
        raise Refused(f"{self.store.uri} kept changing under {WRITE_ATTEMPTS} attempts to publish; try again")


@dataclass(frozen=True, slots=True)
class _Stored:
    """What the stored index tells the auditor, to recognise a rebuild that would change nothing."""

    content: bytes
    commit: str | None
    committed_at: str | None

    @classmethod
    def of(cls, index: DigestIndex | None) -> _Stored | None:
        return None if index is None else cls(_content(index), index.source.commit, index.source.committed_at)

    def holds(self, index: DigestIndex) -> bool:
        """Whether writing ``index`` would change nothing worth a generation: the same promoted content
        from the same commit. Hourly resyncs of an unchanged head write nothing. Another commit (one the
        order guard let through) is recorded even when it promotes nothing new, because the guard
        compares against the recorded commit: otherwise a replayed push of a commit between the two,
        with other content, would pass it. The same commit with a time where the stored one has none is
        recorded too, which arms ``by_commit_time``."""
        if (index.source.commit, index.source.committed_at) != (self.commit, self.committed_at):
            return False
        return _content(index) == self.content


def _content(index: DigestIndex) -> bytes:
    document = orjson.loads(index.to_json())
    for incidental in ("built_at", "source"):
        document.pop(incidental, None)
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def _previous(stored: Stored | None, uri: str, *, replace_unreadable: bool) -> DigestIndex | None:
    if stored is None:
        return None
    try:
        return DigestIndex.from_json(stored.data)
    except InvalidIndex as error:
        if not replace_unreadable:
            # Perhaps written by a newer version: replacing it would skip the order and loss checks.
            raise Refused(
                f"the index at {uri} cannot be read by this version ({error}); it is kept. Use the version "
                "that wrote it, or replace it with --force (its resolutions are lost, and the commit order "
                "and loss checks cannot be made against it)"
            ) from None
        # Replaced, not built upon: its resolutions are lost and will be fetched again.
        log.warning("the index at %s is unreadable and will be replaced: %s", uri, error)
        return None


def by_commit_time(published: Source, rebuilt: Source) -> None:
    """The order guard of the CLI, which has no history to ask: the commit times it is given must not go
    back. (``sync_index`` asks k8s.io's history instead: times are set by whoever commits, and two
    commits can share a second.) An index without a commit time never replaces one with a time."""
    if not published.committed_at:
        return
    if not rebuilt.committed_at:
        raise Refused(
            f"the published index records commit {published.commit} of {published.committed_at} "
            f"and {rebuilt.commit or 'this build'} has no commit time, so it could be older; it is kept. "
            "Give the commit's time (--committed-at), or --force to replace it knowingly"
        )
    if _instant(rebuilt.committed_at) < _instant(published.committed_at):
        raise Superseded(
            f"the published index is from a newer commit ({published.commit} of "
            f"{published.committed_at}) than {rebuilt.commit} of {rebuilt.committed_at}; it is kept"
        )


def _instant(text: str) -> dt.datetime:
    try:
        return commit_time(text)
    except ValueError:
        raise Refused(f"commit time {text!r} is not ISO 8601; the published index is kept") from None


def check_loss(index: DigestIndex, previous: DigestIndex | None, max_loss: float) -> None:
    """Refuse an index that drops more than ``max_loss`` of the promoted digests, naming the images hit."""
    if previous is None:
        return
    before = previous.promoted_digests()
    if not before:
        return
    lost = len(before - index.promoted_digests())
    if lost / len(before) > max_loss:
        raise Refused(
            f"the new index would drop {lost} of {len(before)} promoted digests (more than "
            f"{max_loss:.0%}): {'; '.join(changes.losses(previous, index))}. The published index is kept. "
            "If this is intended, rebuild by hand with a higher --max-loss"
        )


def _report_progress(summary: Summary) -> None:
    log.info(
        "resolving: %d of %d done (%d manifest lists, %d failed), %d registry calls, %.0fs",
        summary.resolved + summary.not_found + summary.failed,
        summary.pending,
        summary.manifest_lists,
        summary.failed,
        summary.calls,
        summary.seconds,
    )
