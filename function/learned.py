"""What a process learns from the registries between two publications of the index, in one bounded place.

Content under a digest is the same everywhere and forever, so what a manifest is (its ``Facts``) and what
a listed manifest list contains (its children) can be remembered by digest for the life of the process,
and shared by every decision and every thread (the audit instance's, the sweep's hosts). Both memories
are least-recently-used and bounded, so no stream of events can grow them without limit; each has its
own lock (``LruCache``).
"""

from __future__ import annotations

from collections.abc import Iterable

from function.bounded import LruCache
from function.index.digests import DigestIndex
from function.index.image import Image
from function.index.nesting import descendants
from function.registry.content import Facts
from function.signing.results import Outcome, Verified

# Facts of manifests fetched for events, by digest: about 400 bytes each, so 20 MB at most; enough for
# every signature, attestation and referrer of a re-signing of all of k8s.io's promoted digests.
MAX_FACTS = 50_000
# Children of listed lists resolved on a miss (the next publication carries them too): every promoted
# digest of k8s.io fits.
MAX_CHILDREN = 50_000
# Signature outcomes by (manifest digest, subject): a few hundred bytes each; every promoted digest of
# k8s.io has one signature, and one attestation at most.
MAX_SIGNATURES = 100_000


class Learned:
    def __init__(
        self, *, max_facts: int = MAX_FACTS, max_children: int = MAX_CHILDREN, max_signatures: int = MAX_SIGNATURES
    ) -> None:
        self._facts: LruCache[str, Facts] = LruCache(max_facts)
        self._children: LruCache[str, tuple[str, ...]] = LruCache(max_children)
        self._signatures: LruCache[tuple[str, str], Outcome] = LruCache(max_signatures)

    def facts(self, digest: str) -> Facts | None:
        return self._facts.get(digest)

    def remember_facts(self, digest: str, facts: Facts) -> None:
        self._facts.put(digest, facts)

    def signature(self, digest: str, subject: str) -> Outcome | None:
        """What checking the signature manifest ``digest`` as a signature of ``subject`` concluded."""
        return self._signatures.get((digest, subject))

    def remember_signature(self, digest: str, subject: str, outcome: Outcome) -> None:
        self._signatures.put((digest, subject), outcome)

    def verified_signatures(self) -> list[tuple[str, str, Verified]]:
        """Every remembered signature that verified, as (manifest digest, subject, outcome)."""
        return [(d, s, o) for (d, s), o in self._signatures.items() if isinstance(o, Verified)]

    def remember_children(self, digest: str, children: Iterable[str]) -> None:
        """What resolving the listed ``digest`` found: its descendants (children, and those of nested
        indexes: ``digests.descendants``), or none for a single manifest."""
        self._children.put(digest, tuple(children))

    def children(self, index: DigestIndex, digest: str) -> tuple[str, ...] | None:
        """The descendants of ``digest`` as the index resolved them, else as this process did; None when
        neither has resolved it."""
        known = descendants(index.manifests, digest)
        return known if known is not None else self._children.get(digest)

    def unresolved_of(self, image: Image) -> list[str]:
        """The listed digests of ``image`` that neither the index nor this process has resolved."""
        return [d for d in image.unresolved if self._children.get(d) is None]

    def parents_of(self, image: Image, digest: str) -> list[str]:
        """The listed lists of ``image`` that contain ``digest``, as the index or this process resolved them."""
        parents = list(image.parents_of(digest))
        for listed in image.unresolved:
            if digest in (self._children.get(listed) or ()):
                parents.append(listed)
        return parents
