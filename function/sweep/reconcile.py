"""One repository of a destination registry against the index: what it holds that no rule of the audit
explains, and what was promoted there that it lacks.

What it holds is decided by the audit's own code, as an INSERT of each (digest, tag) and once untagged
for an untagged digest; REJECTED becomes a finding, RETRY leaves that manifest unswept. What it lacks is
checked for promoted digests, their tags, and the platform children of promoted lists it holds; never
for signatures, attestations, SBOMs or referrers, which are not promoted digests. Where the listing is
incomplete (plain registries list tagged manifests only), an expected digest not seen is asked for with
one HEAD before it is reported MISSING, and a fault on that HEAD leaves it unswept. Where the repository
lies in the signing registry, each promoted digest it holds must also hold its `.sig` (``unsigned``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from function import verdict as v
from function.auditor import Auditor
from function.events import Event
from function.index.digests import DigestIndex
from function.index.image import Image
from function.index.nesting import descendants
from function.index.resolve import fetch_tree
from function.reference import InvalidReference
from function.registry.client import ManifestNotFound, RegistryClient, RegistryError
from function.registry.content import INDEX_MEDIA_TYPES
from function.registry.listing import Listed, Unlisted, short_reason
from function.sweep.unsigned import SigningRequirement
from function.verdict import Verdict


class Presence(enum.Enum):
    HELD = "held"
    ABSENT = "absent"
    UNKNOWN = "unknown"


@dataclass
class Outcome:
    findings: list[Verdict] = field(default_factory=list)
    unswept: list[Unlisted] = field(default_factory=list)
    manifests: int = 0


class RepositoryCheck:
    """Checks one listed repository of ``index``; ``image`` is the promoted image at its path, None where
    there is none."""

    def __init__(
        self,
        index: DigestIndex,
        auditor: Auditor,
        registry: RegistryClient,
        listed: Listed,
        image: Image | None,
        signing: SigningRequirement | None = None,
    ) -> None:
        self.index = index
        self.auditor = auditor
        self.registry = registry
        self.listed = listed
        self.image = image
        self.host, _, self.repository = listed.path.partition("/")
        self.held: dict[str, set[str]] = {d: set(entry.tags) for d, entry in listed.manifests.items()}
        self.media_types: dict[str, str | None] = {d: entry.media_type for d, entry in listed.manifests.items()}
        self.uploaded = {d: entry.uploaded for d, entry in listed.manifests.items()}
        self.signing = signing or SigningRequirement()
        self.outcome = Outcome()
        self._asked: dict[str, Presence] = {}

    def run(self) -> Outcome:
        promoted = self.image.digests if self.image is not None else {}
        absent = [d for d in promoted if self._presence(d) is Presence.ABSENT]
        children = self._children()
        for digest, kids in children.items():
            if digest in promoted:
                self._expect_children(digest, kids)
            elif not self.listed.complete:
                # Only an index's own list names the untagged manifests a plain listing cannot show.
                for kid in kids:
                    self.held.setdefault(kid, set())
        self._decide_held()
        for digest, tags in promoted.items():
            if digest in absent:
                self._missing(digest, None, "absent", self._absent_text(digest))
            elif digest not in self.held:
                continue  # unknown: a fault left it unswept
            # A tag of an absent digest is absent too: the contract reports every promoted tag not in place.
            for tag in sorted(set(tags) - self.held.get(digest, set())):
                self._missing(digest, tag, "tag_absent", self._tag_text(digest, tag))
        if self.signing.applies_to(self.listed.path):
            self._expect_signatures(promoted, children)
        return self.outcome

    # --- what it holds ------------------------------------------------------------------------------

    def _decide_held(self) -> None:
        for digest, tags in sorted(self.held.items()):
            self.outcome.manifests += 1
            each: list[str | None] = [*sorted(tags)] or [None]
            for tag in each:
                verdict = self.auditor.audit(Event("INSERT", self.listed.path, digest, tag))
                if verdict.verdict == v.Kind.REJECTED:
                    self.outcome.findings.append(replace(verdict, action=None, source=v.Origin.SWEEP))
                elif verdict.verdict == v.Kind.RETRY:
                    where = f"{self.listed.path}@{digest}" + (f" (tag {tag})" if tag else "")
                    self.outcome.unswept.append(Unlisted(where, verdict.reason or "registry unavailable", nested=False))

    def _children(self) -> dict[str, tuple[str, ...]]:
        """The children of every index held: from the index where it resolved them, else from the registry."""
        promoted = self.image.digests if self.image is not None else {}
        children: dict[str, tuple[str, ...]] = {}
        for digest in list(self.held):
            known = self.auditor.learned.children(self.index, digest) if digest in promoted else None
            if known is not None:
                children[digest] = known
                continue
            if self.media_types.get(digest) not in INDEX_MEDIA_TYPES:
                continue
            if self.listed.complete and digest not in promoted:
                continue  # the listing holds its children already
            try:
                tree = fetch_tree(self.registry, digest, [self.listed.path])
            except (RegistryError, InvalidReference) as error:
                self.outcome.unswept.append(Unlisted(f"{self.listed.path}@{digest}", short_reason(error), nested=False))
                continue
            if tree is None:
                continue
            # Every descendant (children of nested indexes too) is a child of the listed digest.
            children[digest] = descendants(tree.children, digest) or ()
            if digest in promoted:
                # True of this digest everywhere, and what the audit's own rules decide children by.
                self.auditor.learned.remember_children(digest, children[digest])
        return children

    # --- what it lacks ------------------------------------------------------------------------------

    def _expect_children(self, parent: str, kids: Iterable[str]) -> None:
        for kid in kids:
            if self._presence(kid) is Presence.ABSENT:
                text = (
                    f"{kid}, a platform child of {self._image_name()} {parent}, is missing from {self.listed.path}, "
                    "which holds that list."
                )
                self._missing(kid, None, "absent", text, parent=parent)

    def _expect_signatures(self, promoted: Iterable[str], children: dict[str, tuple[str, ...]]) -> None:
        """MISSING ``unsigned`` for a promoted digest held without its `.sig`; a `.sig` that is held was
        decided with the rest of the repository (REJECTED ``bad_signature`` when it does not verify)."""
        kids = {kid for parent, each in children.items() if parent in promoted for kid in each}
        tags = {tag for held in self.held.values() for tag in held}
        for digest in sorted(promoted):
            if digest not in self.held or digest in kids or not self.signing.requires(self.uploaded.get(digest)):
                continue
            tag = digest.replace(":", "-") + ".sig"
            if tag not in tags:
                text = (
                    f"{digest}, promoted as {self._image_name()}, has no signature in {self.listed.path}: no {tag}. "
                    "The promoter signs every image it promotes here; see the runbook's `unsigned` section."
                )
                self._missing(digest, None, v.Reason.UNSIGNED, text)

    def _presence(self, digest: str) -> Presence:
        """Whether the repository holds ``digest``: from the listing, else from one HEAD."""
        if digest in self.held:
            return Presence.HELD
        if self.listed.complete:
            return Presence.ABSENT
        return self._ask(digest)

    def _ask(self, digest: str) -> Presence:
        if digest in self._asked:
            return self._asked[digest]
        try:
            head = self.registry.head_manifest(self.host, self.repository, digest)
        except ManifestNotFound:
            presence = Presence.ABSENT
        except (RegistryError, InvalidReference) as error:
            self.outcome.unswept.append(Unlisted(f"{self.listed.path}@{digest}", short_reason(error), nested=False))
            presence = Presence.UNKNOWN
        else:
            presence = Presence.HELD
            self.held.setdefault(digest, set())
            self.media_types[digest] = head.media_type
        self._asked[digest] = presence
        return presence

    def _missing(self, digest: str, tag: str | None, reason: str, message: str, *, parent: str | None = None) -> None:
        """A MISSING line; the HEAD that confirmed an absence is counted on the digest's line, not its tags'."""
        index = self.index
        self.outcome.findings.append(
            Verdict(
                v.Kind.MISSING,
                message,
                path=self.listed.path,
                digest=digest,
                tag=tag,
                reason=reason,
                image=self._image_name(),
                parent=parent,
                registry_calls=1 if tag is None and digest in self._asked else 0,
                source=v.Origin.SWEEP,
                index=v.IndexRef(index.source.commit, index.generation),
            )
        )

    def _image_name(self) -> str | None:
        return self.image.name if self.image is not None else None

    def _absent_text(self, digest: str) -> str:
        tags = self.image.tags_of(digest) if self.image is not None else None
        shown = f" with tag {', '.join(sorted(tags))}" if tags else ""
        return f"{digest} is promoted as {self._image_name()}{shown} but {self.listed.path} does not hold it."

    def _tag_text(self, digest: str, tag: str) -> str:
        elsewhere = next((d for d, tags in self.held.items() if tag in tags), None)
        if elsewhere is not None:
            return f"Tag {tag} of {self.listed.path} points at {elsewhere}, not at the promoted {digest}."
        if digest not in self.held:
            return f"{self.listed.path} has no tag {tag}: {digest}, promoted with it, is absent."
        return f"{self.listed.path} holds {digest} but not its promoted tag {tag}."
