"""Rebuilding and publishing the digest index: shared by ``sync_index`` and ``build-index``.

The published index is only ever replaced by one that (a) parsed without a fatal problem, (b) comes
from a commit no older than the one it replaces, and (c) does not lose a large share of the promoted
digests; and it is written with a generation precondition, so two concurrent syncs cannot lose each
other's work: the loser re-reads, keeps the winner's resolutions and tries again, or stands down when
the winner published a newer commit.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from function.index import changes, manifests
from function.index.digests import DigestIndex, InvalidIndex, Source
from function.index.resolve import DEFAULT_WORKERS, Summary, resolve
from function.index.store import GenerationMismatch, IndexStore, Stored
from function.registry.client import ManifestSource

log = logging.getLogger(__name__)

# An index that would drop more than this share of the promoted digests is refused: manifests are
# append-only in practice, and a broken checkout would otherwise silence the auditor for everything.
DEFAULT_MAX_LOSS = 0.10
WRITE_ATTEMPTS = 5

RegistryFactory = Callable[[frozenset[str]], ManifestSource]


class Refused(Exception):
    """The new index was not published; the one in the store stays. The message says why."""


@dataclass(frozen=True, slots=True)
class Published:
    index: DigestIndex
    generation: int
    carried: int
    resolution: Summary | None
    previous_digests: int

    def line(self) -> str:
        counts = self.index.counts()
        text = (
            f"published {counts['digests']} digests of {counts['images']} images in {counts['projects']} "
            f"projects (was {self.previous_digests}); {counts['resolved']} resolved, {counts['unresolved']} "
            f"unresolved, {self.carried} resolutions reused; generation {self.generation}"
        )
        if self.resolution is not None:
            text += f"; {self.resolution.line()}"
        return text


def read_index(store: IndexStore) -> tuple[DigestIndex, int] | None:
    """The published index and its generation, or None when nothing is published yet."""
    stored = store.read()
    if stored is None:
        return None
    index = DigestIndex.from_json(stored.data)
    index.generation = stored.generation
    return index, stored.generation


@dataclass(frozen=True, slots=True)
class Plan:
    """A freshly built index, and the published one it would replace (None: nothing readable is there)."""

    index: DigestIndex
    previous: DigestIndex | None
    stored: Stored | None


def plan(root: str | os.PathLike[str], store: IndexStore, *, source: Source, replace_unreadable: bool = True) -> Plan:
    """Build the index of the manifests at ``root`` on top of the published one, without publishing it.

    Refuses a fatal manifest problem, an older commit than the published one, and (unless
    ``replace_unreadable``) a published index this version cannot read, such as a newer schema."""
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
    stored = store.read()
    previous = _previous(stored, store.uri, replace_unreadable=replace_unreadable)
    _check_order(source, previous)
    return Plan(DigestIndex.build(manifest_set, source=source, previous=previous), previous, stored)


def rebuild(
    root: str | os.PathLike[str],
    store: IndexStore,
    *,
    source: Source,
    registry_factory: RegistryFactory | None = None,
    max_loss: float = DEFAULT_MAX_LOSS,
    workers: int = DEFAULT_WORKERS,
    replace_unreadable: bool = True,
) -> Published:
    """Build the index of the manifests at ``root`` on top of the published one, and publish it."""
    planned = plan(root, store, source=source, replace_unreadable=replace_unreadable)
    index, previous, stored = planned.index, planned.previous, planned.stored
    carried = len(index.manifests)
    resolution = None
    if registry_factory is not None:
        registry = registry_factory(index.registry_hosts())
        resolution = resolve(index, registry, workers=workers, progress=_report_progress)
    previous_digests = len(previous.promoted_digests()) if previous else 0
    for _ in range(WRITE_ATTEMPTS):
        check_loss(index, previous, max_loss)
        try:
            generation = store.write(index.to_json(), if_generation=stored.generation if stored else None)
        except GenerationMismatch:
            # Another sync published first: keep what it resolved, and stand down if it is newer.
            stored = store.read()
            previous = _previous(stored, store.uri, replace_unreadable=replace_unreadable)
            _check_order(source, previous)
            if previous is not None:
                carried += index.adopt(previous)
            continue
        return Published(index, generation, carried, resolution, previous_digests)
    raise Refused(f"{store.uri} kept changing under {WRITE_ATTEMPTS} attempts to publish; try again")


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


def _check_order(source: Source, previous: DigestIndex | None) -> None:
    if previous is None or not source.committed_at or not previous.source.committed_at:
        return
    if _instant(source.committed_at) < _instant(previous.source.committed_at):
        raise Refused(
            f"the published index is from a newer commit ({previous.source.commit} of "
            f"{previous.source.committed_at}) than {source.commit} of {source.committed_at}; it is kept"
        )


def _instant(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(f"commit time {text!r} is not ISO 8601; the published index is kept") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


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
