"""Nested indexes: every descendant of a listed index (an index inside an index, to ``MAX_DEPTH``) is a
child of the listed digest, as a runtime resolving the listed digest would reach it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Every descendant of a listed index (an index inside an index, to this depth) is a child of the listed
# digest; resolution stops at this many descendants per listed digest (the digest stays unresolved).
MAX_DEPTH = 4
MAX_DESCENDANTS = 1_000


def descendants(manifests: Mapping[str, Iterable[str]], digest: str) -> tuple[str, ...] | None:
    """Every descendant of ``digest`` to ``MAX_DEPTH`` (children, children of nested indexes, ...), in
    the order found, as ``manifests`` (digest -> children) records them; None when it records no entry for
    ``digest``. At most ``MAX_DESCENDANTS`` are returned."""
    if digest not in manifests:
        return None
    found: dict[str, None] = {}
    level = [digest]
    for _ in range(MAX_DEPTH):
        below = [c for d in level for c in manifests.get(d, ()) if c != digest and c not in found]
        for child in below:
            found[child] = None
        level = [c for c in dict.fromkeys(below) if c in manifests]
        if not level or len(found) >= MAX_DESCENDANTS:
            break
    return tuple(found)[:MAX_DESCENDANTS]


def with_nested(manifests: Mapping[str, list[str]], digests: Iterable[str]) -> dict[str, list[str]]:
    """The entries of ``manifests`` for ``digests`` and for the nested indexes among their descendants."""
    kept: dict[str, list[str]] = {}
    for digest in digests:
        if digest in manifests:
            kept[digest] = manifests[digest]
            for child in descendants(manifests, digest) or ():
                if child in manifests:
                    kept[child] = manifests[child]
    return kept
