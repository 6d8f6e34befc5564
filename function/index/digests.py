"""The digest index: every promoted (path, digest, tags), and what each promoted manifest list contains.

Built from the manifests, serialized to versioned JSON, loaded once per process and then answered
from dicts: one lookup turns an event path into the promoted image it names, and per image one lookup
answers whether a digest is listed (with its tags) or a platform child of a listed manifest list.

``manifests`` records what resolving a promoted digest from a registry found: its children when it is a
manifest list / image index, an empty list when it is a single manifest. Digests are immutable, so a
recorded entry is carried into every later build and never fetched again.

An index is a value: made whole (with the store generation it was read at) and never changed after. A
rebuild that resolves more makes a new index (``with_resolutions``); what a process learns between
publications lives in ``function.learned``, not here, so one index can serve every thread of a process.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from function.index.image import Image, merged
from function.index.manifests import ManifestSet, Problem
from function.index.nesting import with_nested
from function.index.platforms import Platforms
from function.reference import is_digest

SCHEMA_VERSION = 1
# Enough to diagnose a broken manifest set without letting a pathological one bloat the index.
MAX_PROBLEMS_KEPT = 200


class InvalidIndex(ValueError):
    """A document that is not a digest index this code can read."""


@dataclass(frozen=True, slots=True)
class Location:
    """Where an event path falls: under which destination, and which promoted image (if any) it is."""

    destination: str
    image: Image | None


@dataclass(frozen=True, slots=True)
class Source:
    commit: str | None = None
    committed_at: str | None = None
    manifests: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"commit": self.commit, "committed_at": self.committed_at, "manifests": self.manifests}


@dataclass(frozen=True, slots=True)
class ProjectEntry:
    staging: str | None
    destinations: tuple[str, ...]
    images: Mapping[str, Image]


@dataclass(frozen=True, slots=True)
class Promotion:
    """One project's promotion of one image: from where, to which paths, with which digests."""

    project: str
    staging: str | None
    destinations: tuple[str, ...]
    image: Image

    @property
    def paths(self) -> list[str]:
        return [f"{destination}/{self.image.name}" for destination in self.destinations]


class DigestIndex:
    def __init__(
        self,
        projects: Mapping[str, ProjectEntry],
        manifests: Mapping[str, list[str]],
        *,
        source: Source,
        built_at: str,
        problems: list[str],
        generation: int | None = None,
        platforms: Platforms | None = None,
    ) -> None:
        self.projects = projects
        self.manifests = manifests
        # Descriptive (``lookup``); no decision reads them.
        self.platforms = platforms if platforms is not None else Platforms(manifests, {})
        self.source = source
        self.built_at = built_at
        self.problems = problems
        # The store generation this index was read at; None for one built here and not yet read back.
        self.generation = generation
        self._paths: dict[str, Location] = {}
        self._destinations: set[str] = set()
        self._link()

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        manifest_set: ManifestSet,
        *,
        source: Source,
        previous: DigestIndex | None = None,
    ) -> DigestIndex:
        """The index of ``manifest_set``, with what ``previous`` resolved for digests still promoted."""
        promoted = {d for project in manifest_set.projects.values() for dmap in project.images.values() for d in dmap}
        carried = with_nested(previous.manifests, promoted) if previous is not None else {}
        platforms = Platforms(carried, previous.platforms if previous is not None else {})
        projects = {
            name: ProjectEntry(
                project.staging,
                project.destinations,
                {
                    image: Image(image, name, {d: sorted(tags) for d, tags in dmap.items()}, carried)
                    for image, dmap in project.images.items()
                },
            )
            for name, project in manifest_set.projects.items()
        }
        problems = _problem_lines(manifest_set.problems)
        return cls(projects, carried, source=source, built_at=_now(), problems=problems, platforms=platforms)

    def with_resolutions(
        self, resolved: Mapping[str, Iterable[str]], platforms: Mapping[str, tuple[str, ...]] | None = None
    ) -> DigestIndex:
        """This index with ``resolved`` (digest -> children, empty for a single manifest) recorded too, and
        ``platforms`` (list -> its children's platforms); a new value, not read from any store (no generation)."""
        manifests = {**self.manifests, **{digest: list(children) for digest, children in resolved.items()}}
        named = Platforms(manifests, {**self.platforms, **(platforms or {})})
        projects = {
            name: ProjectEntry(
                entry.staging,
                entry.destinations,
                {n: Image(n, image.project, image.digests, manifests) for n, image in entry.images.items()},
            )
            for name, entry in self.projects.items()
        }
        return DigestIndex(
            projects, manifests, source=self.source, built_at=self.built_at, problems=self.problems, platforms=named
        )

    def carrying(self, previous: DigestIndex) -> tuple[DigestIndex, int]:
        """This index with what ``previous`` resolved (and this one did not) for digests it promotes, and
        how many such resolutions there were."""
        promoted = self.promoted_digests()
        carried = with_nested(previous.manifests, promoted - self.manifests.keys())
        return (self.with_resolutions(carried, previous.platforms) if carried else self), len(carried)

    def _link(self) -> None:
        """Derive the lookup tables from ``projects``."""
        ordered: list[tuple[str, ProjectEntry]] = sorted(
            ((d, p) for p in self.projects.values() for d in p.destinations), key=lambda item: len(item[0])
        )
        for destination, project in ordered:
            self._destinations.add(destination)
            # Longer destinations come later and win: ".../images/kubernetes" + "foo" beats ".../images"
            # + "kubernetes/foo" when both are promoted.
            for name, image in project.images.items():
                path = f"{destination}/{name}"
                known = self._paths.get(path)
                if known is not None and known.image is not None and known.image is not image:
                    # Two projects promote to this very path (one name under a shared root, or "a/b" under
                    # ".../x" and "b" under ".../x/a"): it promotes both sets, so neither raises a false alarm.
                    image = merged(known.image, image)
                self._paths[path] = Location(destination, image)

    # --- queries ------------------------------------------------------------------------------

    def locate(self, path: str) -> Location | None:
        """The promoted image at ``path``; a Location without image if only the destination matches;
        None when the path is under no destination at all (not audited)."""
        hit = self._paths.get(path)
        if hit is not None:
            return hit
        prefix = path
        while prefix:
            if prefix in self._destinations:
                return Location(prefix, None)
            prefix = prefix.rpartition("/")[0]
        return None

    def images(self) -> Iterator[Image]:
        for project in self.projects.values():
            yield from project.images.values()

    def promoted_digests(self) -> set[str]:
        return {d for image in self.images() for d in image.digests}

    def unresolved(self) -> set[str]:
        return self.promoted_digests() - self.manifests.keys()

    def to_resolve(self) -> list[str]:
        """What a rebuild fetches: the unresolved digests, then the promoted lists resolved before platforms
        were recorded (fetched again once, for a person's ``lookup``; never for a decision)."""
        unlabelled = {d for d in self.promoted_digests() if self.manifests.get(d) and d not in self.platforms}
        return sorted(self.unresolved()) + sorted(unlabelled)

    def unresolved_of(self, image: Image) -> list[str]:
        return list(image.unresolved)

    def sources_of(self, image: Image) -> list[str]:
        """Every repository that should hold ``image``'s promoted digests: each of its destination paths,
        then its project's staging repository (where the promoter copies from)."""
        destinations = [path for path, location in self._paths.items() if location.image is image]
        projects = image.project.split("+")  # an image two projects promote to one path names both
        staging = [f"{p.staging}/{image.name}" for name, p in self.projects.items() if p.staging and name in projects]
        return destinations + staging

    def registry_hosts(self) -> frozenset[str]:
        """Every registry host the manifests name: the only hosts the auditor may ever contact."""
        hosts = set()
        for project in self.projects.values():
            for registry in (project.staging, *project.destinations):
                if registry:
                    hosts.add(registry.split("/", 1)[0])
        return frozenset(hosts)

    # --- full scans, for people and rebuilds, never on the audit's hot path ----------------------

    def promotions(self) -> Iterator[Promotion]:
        for name, project in self.projects.items():
            for image in project.images.values():
                yield Promotion(name, project.staging, project.destinations, image)

    def counts(self) -> dict[str, int]:
        promoted = self.promoted_digests()
        entries = tags = 0
        for image in self.images():
            entries += len(image.digests)
            tags += sum(len(t) for t in image.digests.values())
        return {
            "projects": len(self.projects),
            "images": sum(len(p.images) for p in self.projects.values()),
            "destinations": len(self._destinations),
            "paths": len(self._paths),
            "digests": len(promoted),
            "image_digests": entries,
            "tags": tags,
            "resolved": len(promoted & self.manifests.keys()),
            "unresolved": len(promoted - self.manifests.keys()),
            "manifest_lists": sum(1 for d, c in self.manifests.items() if c and d in promoted),
            "children": len({c for d, cs in self.manifests.items() if d in promoted for c in cs}),
            "problems": len(self.problems),
        }

    # --- serialization ------------------------------------------------------------------------

    def to_json(self) -> bytes:
        document = {
            "schema": SCHEMA_VERSION,
            "built_at": self.built_at,
            "source": self.source.as_dict(),
            "counts": self.counts(),
            "problems": self.problems,
            "projects": {
                name: {
                    "staging": project.staging,
                    "destinations": list(project.destinations),
                    "images": {
                        image.name: dict(sorted(image.digests.items()))
                        for image in sorted(project.images.values(), key=lambda i: i.name)
                    },
                }
                for name, project in sorted(self.projects.items())
            },
            "manifests": dict(sorted(self.manifests.items())),
            "platforms": self.platforms.stored(),
        }
        return orjson.dumps(document)

    @classmethod
    def from_json(cls, data: bytes, *, generation: int | None = None) -> DigestIndex:
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise InvalidIndex(f"the digest index is not JSON: {error}") from None
        if not isinstance(document, dict):
            raise InvalidIndex("the digest index is not a JSON object")
        schema = document.get("schema")
        if isinstance(schema, int) and schema > SCHEMA_VERSION:
            raise InvalidIndex(
                f"digest index schema {schema} was written by a newer version of the auditor (this one reads "
                f"{SCHEMA_VERSION}): use that version, or replace the index with `build-index --force`"
            )
        if schema != SCHEMA_VERSION:
            raise InvalidIndex(
                f"digest index schema {schema!r} is not {SCHEMA_VERSION}: rebuild it with this version "
                "(python -m function build-index)"
            )
        try:
            manifests = _checked_manifests(document["manifests"])
            # Added within schema 1: an index written before it has none, and reads as one without platforms.
            platforms = Platforms(manifests, stored=document.get("platforms"))
            projects = {
                name: ProjectEntry(
                    entry["staging"],
                    tuple(entry["destinations"]),
                    {
                        image: Image(image, name, _checked_dmap(dmap), manifests)
                        for image, dmap in entry["images"].items()
                    },
                )
                for name, entry in document["projects"].items()
            }
            source = Source(**document.get("source") or {})
            return cls(
                projects,
                manifests,
                source=source,
                built_at=str(document["built_at"]),
                problems=list(document.get("problems") or []),
                generation=generation,
                platforms=platforms,
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise InvalidIndex(f"the digest index is damaged ({type(error).__name__}: {error}); rebuild it") from None


def _checked_manifests(raw: Mapping[str, Any]) -> dict[str, list[str]]:
    manifests: dict[str, list[str]] = {}
    for digest, children in raw.items():
        if not is_digest(digest) or not isinstance(children, list):
            raise InvalidIndex(f"resolved manifest entry {digest!r} is damaged; rebuild the index")
        manifests[digest] = children
    return manifests


def _checked_dmap(dmap: Any) -> dict[str, list[str]]:
    if not isinstance(dmap, dict):
        raise TypeError(f"an image's digests are a {type(dmap).__name__}, not an object")
    return dmap


def _problem_lines(problems: list[Problem]) -> list[str]:
    lines = [str(problem) for problem in problems[:MAX_PROBLEMS_KEPT]]
    if len(problems) > MAX_PROBLEMS_KEPT:
        lines.append(f"... and {len(problems) - MAX_PROBLEMS_KEPT} more problems")
    return lines


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
