"""A promoted image name and what the index knows of its digests: answered from dicts, derived lazily."""

from __future__ import annotations

from collections.abc import Mapping

from function.index.nesting import descendants


class Image:
    """One promoted image name; the same object answers for each of its destination paths."""

    __slots__ = ("_parents", "_unresolved", "digests", "manifests", "name", "project")

    def __init__(
        self, name: str, project: str, digests: dict[str, list[str]], manifests: Mapping[str, list[str]]
    ) -> None:
        self.name = name
        self.project = project
        # digest -> tags it is promoted with
        self.digests = digests
        # The index's resolved manifests (digest -> children), shared by every image of that index.
        self.manifests = manifests
        self._parents: dict[str, list[str]] | None = None
        self._unresolved: tuple[str, ...] | None = None

    @property
    def parents(self) -> dict[str, list[str]]:
        """Platform child -> the listed manifest lists / indexes that contain it.

        Derived on first use: most images never see a miss, so loading stays proportional to the
        listed digests rather than to all their children. Both inputs are fixed, so a race between two
        threads computes the same map twice at worst."""
        if self._parents is None:
            parents: dict[str, list[str]] = {}
            for digest in self.digests:
                for child in descendants(self.manifests, digest) or ():
                    parents.setdefault(child, []).append(digest)
            self._parents = parents
        return self._parents

    @property
    def unresolved(self) -> tuple[str, ...]:
        """The listed digests the index has not resolved (derived on first use, like ``parents``)."""
        if self._unresolved is None:
            self._unresolved = tuple(d for d in self.digests if d not in self.manifests)
        return self._unresolved

    def tags_of(self, digest: str) -> list[str] | None:
        return self.digests.get(digest)

    def parents_of(self, digest: str) -> list[str]:
        return self.parents.get(digest, [])

    def promotes(self, digest: str) -> bool:
        """Listed here, or a platform child of something listed here."""
        return digest in self.digests or digest in self.parents


def merged(first: Image, second: Image) -> Image:
    """One image promoting both sets: what two projects promoting to the same path stand for."""
    digests = dict(first.digests)
    for digest, tags in second.digests.items():
        digests[digest] = sorted({*digests.get(digest, ()), *tags})
    return Image(second.name, f"{first.project}+{second.project}", digests, second.manifests)
