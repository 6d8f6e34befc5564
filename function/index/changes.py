"""What replacing one digest index by another changes, per promoted image: for ``build-index --dry-run``
and for naming what a refused rebuild would have dropped."""

from __future__ import annotations

from dataclasses import dataclass, field

from function.index.digests import DigestIndex

# A refusal names this many images, then says how many more there are.
NAMED_LOSSES = 10


@dataclass(slots=True)
class ImageChange:
    project: str
    image: str
    # digest -> tags, for digests that appear or go
    added: dict[str, list[str]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)
    # digest -> (tags that appear, tags that go), for digests promoted before and after
    retagged: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    was_promoted: bool = True
    is_promoted: bool = True

    def lines(self) -> list[str]:
        status = "" if self.was_promoted and self.is_promoted else " (new image)" if self.is_promoted else " (gone)"
        lines = [f"{self.project} {self.image}{status}"]
        lines += [f"  + {digest} {_tags(tags)}" for digest, tags in sorted(self.added.items())]
        lines += [f"  - {digest} {_tags(tags)}" for digest, tags in sorted(self.removed.items())]
        for digest, (gained, lost) in sorted(self.retagged.items()):
            moves = [f"+{tag}" for tag in gained] + [f"-{tag}" for tag in lost]
            lines.append(f"  ~ {digest} tags {' '.join(moves)}")
        return lines


@dataclass(slots=True)
class Changes:
    images: list[ImageChange]
    # project -> (destinations that appear, destinations that go)
    destinations: dict[str, tuple[list[str], list[str]]]

    @property
    def empty(self) -> bool:
        return not self.images and not self.destinations

    def lines(self) -> list[str]:
        lines = []
        for project, (gained, lost) in sorted(self.destinations.items()):
            lines += [f"{project} + destination {d}" for d in gained] + [f"{project} - destination {d}" for d in lost]
        for change in self.images:
            lines += change.lines()
        added = sum(len(c.added) for c in self.images)
        removed = sum(len(c.removed) for c in self.images)
        retagged = sum(len(c.retagged) for c in self.images)
        lines.append(
            f"{len(self.images)} images change: {added} digests added, {removed} removed, {retagged} retagged; "
            f"{sum(len(a) + len(r) for a, r in self.destinations.values())} destination changes"
        )
        return lines


def compare(before: DigestIndex | None, after: DigestIndex) -> Changes:
    old = _digests_by_image(before)
    new = _digests_by_image(after)
    images = []
    for key in sorted(old.keys() | new.keys()):
        change = _image_change(key, old.get(key), new.get(key))
        if change is not None:
            images.append(change)
    old_destinations, new_destinations = _destinations(before), _destinations(after)
    destinations = {}
    for project in sorted(old_destinations.keys() | new_destinations.keys()):
        was, now = old_destinations.get(project, set()), new_destinations.get(project, set())
        if was != now:
            destinations[project] = (sorted(now - was), sorted(was - now))
    return Changes(images, destinations)


def losses(before: DigestIndex, after: DigestIndex) -> list[str]:
    """The images whose digests would disappear from the index altogether, most affected first, named as
    ``project image (lost of all digests)``: at most ``NAMED_LOSSES``, then how many more."""
    lost = before.promoted_digests() - after.promoted_digests()
    named = []
    for promotion in before.promotions():
        gone = sum(1 for digest in promotion.image.digests if digest in lost)
        if gone:
            total = len(promotion.image.digests)
            named.append((gone, f"{promotion.project} {promotion.image.name} ({gone} of {total} digests)"))
    named.sort(key=lambda item: (-item[0], item[1]))
    texts = [text for _, text in named[:NAMED_LOSSES]]
    if len(named) > NAMED_LOSSES:
        texts.append(f"and {len(named) - NAMED_LOSSES} more")
    return texts


def _image_change(
    key: tuple[str, str], old: dict[str, list[str]] | None, new: dict[str, list[str]] | None
) -> ImageChange | None:
    change = ImageChange(*key, was_promoted=old is not None, is_promoted=new is not None)
    old, new = old or {}, new or {}
    change.added = {d: tags for d, tags in new.items() if d not in old}
    change.removed = {d: tags for d, tags in old.items() if d not in new}
    for digest in old.keys() & new.keys():
        gained, lost = sorted(set(new[digest]) - set(old[digest])), sorted(set(old[digest]) - set(new[digest]))
        if gained or lost:
            change.retagged[digest] = (gained, lost)
    if change.added or change.removed or change.retagged or change.was_promoted != change.is_promoted:
        return change
    return None


def _digests_by_image(index: DigestIndex | None) -> dict[tuple[str, str], dict[str, list[str]]]:
    if index is None:
        return {}
    return {(p.project, p.image.name): p.image.digests for p in index.promotions()}


def _destinations(index: DigestIndex | None) -> dict[str, set[str]]:
    if index is None:
        return {}
    return {name: set(project.destinations) for name, project in index.projects.items()}


def _tags(tags: list[str]) -> str:
    return ", ".join(tags) if tags else "(untagged)"
