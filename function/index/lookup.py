"""What the index says about a term a person types: an image name, a digest, or a full reference.

Answers "where is ``pause`` promoted, with which digests and tags?", "which images promote this digest,
or whose platform child is it?" and "is ``host/path@digest`` (or ``:tag``) promoted?"; the public name
``registry.k8s.io/NAME[:TAG|@DIGEST]`` (or ``NAME:TAG``) answers for every destination. Descriptive only:
what an event would be decided is ``audit REFERENCE``'s job.

A digest that is not listed may be a platform child of a list the index has not resolved yet: the answer
is then "may be a child of ..." (``undecided``), never "not promoted".
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from function.index.digests import DigestIndex, Promotion
from function.index.image import Image
from function.reference import Reference, artifact_subject, is_digest, names_a_host, parse_reference

# Long enough to be meant as a digest; bare hex only in full, since a short one could be an image name.
_SHORT_DIGEST = re.compile(r"sha256:([0-9a-f]{6,64})|([0-9a-f]{64})")

IMAGE = "image"
DIGEST = "digest"
REFERENCE = "reference"
# The public name people paste; it redirects to every destination region.
PUBLIC_HOST = "registry.k8s.io"


class AmbiguousDigest(ValueError):
    """A digest prefix that more than one known digest starts with."""


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate with the fewest single-character edits from ``word`` (Levenshtein), None if none."""
    return min(candidates, key=lambda candidate: (_edits(word, candidate), candidate), default=None)


def _edits(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


@dataclass(frozen=True, slots=True)
class Entry:
    """One promoted digest as the index knows it."""

    digest: str
    tags: list[str]
    # Platform children when it is a resolved list, [] for a single manifest, None while unresolved.
    children: list[str] | None
    # Set when ``digest`` matched as a platform child: the listed list it belongs to (``tags`` are its tags).
    parent: str | None = None
    # The platform each child's descriptor names ("" for none), aligned with ``children``; for a child, its
    # own. As the pusher labelled them: descriptive only.
    platforms: tuple[str, ...] = ()
    platform: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "tags": self.tags,
            "children": self.children,
            "platforms": list(self.platforms) if self.children else None,
            "parent": self.parent,
            "platform": self.platform if self.parent else None,
        }


@dataclass(slots=True)
class Match:
    promotion: Promotion
    entries: list[Entry] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        promotion = self.promotion
        return {
            "project": promotion.project,
            "image": promotion.image.name,
            "staging": promotion.staging,
            "paths": promotion.paths,
            "digests": [entry.as_dict() for entry in self.entries],
        }


@dataclass(frozen=True, slots=True)
class Findings:
    term: str
    kind: str
    matches: list[Match]
    # Why the term, as given, is not promoted (the matches may still show what is), in words.
    note: str | None = None
    # What the term was taken as, where that is not plain: a cosign tag stands for its subject.
    about: str | None = None
    # Unresolved lists the digest looked up may be a platform child of: neither found nor "not promoted".
    maybe_child_of: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return self.note is None

    @property
    def undecided(self) -> bool:
        return bool(self.maybe_child_of)

    def as_dict(self) -> dict[str, Any]:
        return {
            "term": self.term,
            "kind": self.kind,
            "found": self.found,
            "note": self.note,
            "about": self.about,
            "maybe_child_of": list(self.maybe_child_of),
            "images": [match.as_dict() for match in self.matches],
        }


def lookup(index: DigestIndex, term: str) -> Findings:
    """Raises ``InvalidReference`` for a term that looks like a reference but is not a valid one, and
    ``AmbiguousDigest`` for a digest prefix of more than one digest."""
    # A digest as the verdict table shortens it ("sha256:<12 hex>…") or as other tools print it (bare hex).
    term = term.strip().rstrip("…")
    short = _SHORT_DIGEST.fullmatch(term)
    if short is not None:
        return _digest_prefix(index, term, f"sha256:{short.group(1) or short.group(2)}")
    if term.startswith(PUBLIC_HOST + "/"):
        return _public(index, term, term.removeprefix(PUBLIC_HOST + "/"))
    if "@" in term or _names_a_host(term):
        return _reference(index, term)
    if ":" in term:
        return _public(index, term, term)
    return _image(index, term)


def _digest_prefix(index: DigestIndex, term: str, prefix: str) -> Findings:
    if is_digest(prefix):
        return _digest(index, prefix)
    known = index.promoted_digests() | {child for children in index.manifests.values() for child in children}
    candidates = sorted(d for d in known if d.startswith(prefix))
    if len(candidates) == 1:
        return _digest(index, candidates[0])
    if not candidates:
        return Findings(term, DIGEST, [], f"no promoted digest or known platform child starts with {prefix}")
    shown = ", ".join(candidates[:5]) + (f" and {len(candidates) - 5} more" if len(candidates) > 5 else "")
    raise AmbiguousDigest(f"{prefix} is ambiguous: {shown}; give more of it")


def _names_a_host(term: str) -> bool:
    first, slash, _ = term.partition("/")
    return bool(slash) and names_a_host(first)


def host_of(term: str) -> str | None:
    """The registry host a term names (``host/path...``), None for a name, a digest or the public name."""
    term = term.strip()
    if term.startswith(PUBLIC_HOST + "/") or not _names_a_host(term):
        return None
    return term.partition("/")[0].lower()


def by_version(digests: dict[str, list[str]]) -> list[str]:
    """The digests in the order of their tags' versions (3.9 before 3.10), untagged last."""
    return sorted(digests, key=lambda d: (not digests[d], max((_version(t) for t in digests[d]), default=()), d))


def _version(tag: str) -> tuple[object, ...]:
    """A tag's place in version order: numbers as numbers, and a pre-release (``v1.30.0-rc.1``) before
    its release, as semantic versioning orders them."""
    core, dash, pre = tag.partition("-")
    return (_parts(core), not dash, _parts(pre))


def _parts(text: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.findall(r"\d+|[^\d.]+", text))


def _image(index: DigestIndex, name: str) -> Findings:
    promotions = _promotions_named(index, name)
    matches = [Match(p, [_listed(index, p.image, d) for d in by_version(p.image.digests)]) for p in promotions]
    note = None
    if not promotions:
        names = sorted({p.image.name for p in index.promotions()})
        close = difflib.get_close_matches(name, names, n=5)
        note = f"no promoted image is named {name!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
    return Findings(name, IMAGE, matches, note)


def _digest(index: DigestIndex, digest: str) -> Findings:
    matches: dict[tuple[str, str], Match] = {}
    for promotion in _promotions_listing(index, digest):
        _match(matches, promotion).entries.append(_listed(index, promotion.image, digest))
    for parent in _lists_containing(index, digest):
        for promotion in _promotions_listing(index, parent):
            _match(matches, promotion).entries.append(_child(index, promotion.image, digest, parent))
    if matches:
        return Findings(digest, DIGEST, list(matches.values()))
    unresolved = tuple(sorted(index.unresolved()))
    if unresolved:
        return Findings(digest, DIGEST, [], _maybe_child(digest, unresolved), maybe_child_of=unresolved)
    return Findings(digest, DIGEST, [], f"{digest} is neither promoted nor a known platform child of a promoted list")


def _maybe_child(digest: str, lists: tuple[str, ...]) -> str:
    shown = ", ".join(lists[:3]) + (f" and {len(lists) - 3} more" if len(lists) > 3 else "")
    return (
        f"{digest} is not listed, but may be a child of {shown}: the index has not resolved "
        f"{'that list' if len(lists) == 1 else f'these {len(lists)} lists'} yet. Ask the registries with "
        "`audit REFERENCE`, or resolve them with `build-index` (without --offline)"
    )


def _public(index: DigestIndex, term: str, name: str) -> Findings:
    """``NAME[:TAG][@DIGEST]`` as registry.k8s.io serves it: answered for every destination of NAME."""
    reference = parse_reference(f"{PUBLIC_HOST}/{name}")
    image = reference.path.removeprefix(PUBLIC_HOST + "/")
    promotions = _promotions_named(index, image)
    if not promotions:
        return replace(_image(index, image), term=term, kind=REFERENCE)
    matches = [Match(p, _entries_at(index, p.image, reference)) for p in promotions]
    return _answer(index, term, reference, [p.image for p in promotions], matches)


def _answer(
    index: DigestIndex,
    term: str,
    reference: Reference,
    images: list[Image],
    matches: list[Match],
    about: str | None = None,
) -> Findings:
    entries = [entry for match in matches for entry in match.entries]
    if reference.digest is not None and not entries:
        elsewhere = _elsewhere(index, reference.digest)
        # Only an unresolved list that carries the tag asked for can hold this digest as its child.
        lists = tuple(
            sorted(
                {
                    d
                    for image in images
                    for d in image.unresolved
                    if reference.tag is None or reference.tag in image.digests[d]
                }
            )
        )
        if lists:
            note = _maybe_child(reference.digest, lists) + elsewhere
            return Findings(term, REFERENCE, matches, note, about, maybe_child_of=lists)
        return Findings(term, REFERENCE, matches, f"{_unpromoted(reference, entries)}{elsewhere}", about)
    return Findings(term, REFERENCE, matches, _unpromoted(reference, entries), about)


def _elsewhere(index: DigestIndex, digest: str) -> str:
    """Where else ``digest`` is promoted, as a sentence to append: whether it is ours at all."""
    named = sorted(
        {
            f"{p.image.name}:{','.join(p.image.digests[digest]) or '(untagged)'}"
            for p in _promotions_listing(index, digest)
        }
    )
    if not named:
        return ""
    return f". Elsewhere it is promoted as {', '.join(named[:3])}{' ...' if len(named) > 3 else ''}"


def _reference(index: DigestIndex, term: str) -> Findings:
    reference = parse_reference(term)
    path = reference.path
    location = index.locate(path)
    if location is None:
        note = (
            f"{path} is under no destination registry of the index, so it is not audited; "
            "look up an image by its name (as in `lookup pause`) to see where it is promoted"
        )
        return Findings(term, REFERENCE, [], note)
    promotions = _promotions_at(index, path)
    if not promotions:
        name = path.removeprefix(location.destination + "/")
        note = f"{path} is under destination {location.destination}, but no promoted image is named {name!r}"
        return Findings(term, REFERENCE, [], note)
    about = None
    subject = artifact_subject(reference.tag) if reference.tag and reference.digest is None else None
    if subject is not None:
        # Signatures, attestations and SBOMs are not promoted themselves: their subject is.
        about = f"tag {reference.tag!r} is the {subject[1]} tag of {subject[0]}"
        reference = replace(reference, tag=None, digest=subject[0])
    matches = [Match(p, _entries_at(index, p.image, reference)) for p in promotions]
    return _answer(index, term, reference, [p.image for p in promotions], matches, about)


def _unpromoted(reference: Reference, entries: list[Entry]) -> str | None:
    """Why what ``reference`` names is not promoted at its path, given what matched there; None if it is."""
    if not entries and (reference.digest or reference.tag):
        return f"{reference.digest or f'tag {reference.tag!r}'} is not promoted at {reference.path}"
    if reference.digest and reference.tag and not any(reference.tag in entry.tags for entry in entries):
        return f"{reference.digest} is promoted at {reference.path}, but not with tag {reference.tag!r}"
    return None


def _entries_at(index: DigestIndex, image: Image, reference: Reference) -> list[Entry]:
    if reference.digest is not None:
        listed = [_listed(index, image, reference.digest)] if reference.digest in image.digests else []
        children = [_child(index, image, reference.digest, parent) for parent in image.parents_of(reference.digest)]
        return listed + children
    digests = by_version(image.digests)
    if reference.tag is not None:
        digests = [d for d in digests if reference.tag in image.digests[d]]
    return [_listed(index, image, d) for d in digests]


def _match(matches: dict[tuple[str, str], Match], promotion: Promotion) -> Match:
    key = (promotion.project, promotion.image.name)
    if key not in matches:
        matches[key] = Match(promotion)
    return matches[key]


def _listed(index: DigestIndex, image: Image, digest: str) -> Entry:
    children = index.manifests.get(digest)
    platforms = index.platforms.get(digest) or ("",) * len(children or ())
    return Entry(digest, image.digests[digest], children, platforms=platforms)


def _child(index: DigestIndex, image: Image, digest: str, parent: str) -> Entry:
    return Entry(digest, image.digests[parent], None, parent=parent, platform=index.platforms.of_child(digest))


def _promotions_named(index: DigestIndex, name: str) -> list[Promotion]:
    return [p for p in index.promotions() if p.image.name == name]


def _promotions_at(index: DigestIndex, path: str) -> list[Promotion]:
    """Every project promoting to ``path``: more than one where projects share a destination."""
    return [p for p in index.promotions() if path in p.paths]


def _promotions_listing(index: DigestIndex, digest: str) -> list[Promotion]:
    return [p for p in index.promotions() if digest in p.image.digests]


def _lists_containing(index: DigestIndex, digest: str) -> list[str]:
    """The resolved manifest lists / image indexes that have ``digest`` as a platform child."""
    return sorted(parent for parent, children in index.manifests.items() if digest in children)
