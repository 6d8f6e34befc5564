"""The platforms a resolved list's descriptors name for its children: what ``lookup`` shows a person.

Descriptive only: no decision reads them, and none is trusted (a pusher labels them). In the index
document they are positional, one entry (or null) per list in the order of its ``manifests``: keyed by
digest, they would repeat every list's digest. They are read on first use, so an audit that never asks
never pays for them, and an entry that does not fit its list is left out, never an unreadable index: a
rebuild fetches that list again (``DigestIndex.to_resolve``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class Platforms(Mapping[str, tuple[str, ...]]):
    """Resolved list -> its children's platforms ("" where a descriptor names none), in their order."""

    __slots__ = ("_by_child", "_entries", "_manifests", "_stored")

    def __init__(
        self,
        manifests: Mapping[str, list[str]],
        entries: Mapping[str, tuple[str, ...]] | None = None,
        *,
        stored: object = None,
    ) -> None:
        self._manifests = manifests
        self._entries = _fitting(entries, manifests) if entries is not None else None
        self._stored = stored
        self._by_child: dict[str, str] | None = None

    def _all(self) -> dict[str, tuple[str, ...]]:
        # Both inputs are fixed, so a race between two threads derives the same entries twice at worst.
        if self._entries is None:
            lists = [digest for digest, children in self._manifests.items() if children]
            stored = self._stored if isinstance(self._stored, list) and len(self._stored) == len(lists) else []
            named = {d: tuple(n) for d, n in zip(lists, stored, strict=False) if isinstance(n, list)}
            self._entries = _fitting(named, self._manifests)
        return self._entries

    def __getitem__(self, digest: str) -> tuple[str, ...]:
        return self._all()[digest]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def of_child(self, child: str) -> str:
        """The platform a resolved list's descriptor names for ``child`` ("" when none does)."""
        if self._by_child is None:
            pairs = (zip(self._manifests[d], named, strict=True) for d, named in self._all().items())
            self._by_child = {c: p for each in pairs for c, p in each if p}
        return self._by_child.get(child, "")

    def stored(self) -> list[tuple[str, ...] | None]:
        """As the index document holds them: one entry, or None, per list of ``manifests`` in sorted order."""
        entries = self._all()
        return [entries.get(d) for d, children in sorted(self._manifests.items()) if children]


def _fitting(entries: Mapping[str, Any], manifests: Mapping[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """The entries that name, as strings, one platform for each child ``manifests`` records."""
    return {
        digest: tuple(named)
        for digest, named in entries.items()
        if len(named) == len(manifests.get(digest, ())) > 0 and all(isinstance(p, str) for p in named)
    }
