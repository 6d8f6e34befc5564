"""Resolving promoted digests from the registries: which are manifest lists, and what they contain.

Each still-unresolved promoted digest is fetched once, from one destination of its project (spread
over the destinations so no single region's quota carries the whole build), falling back to the other
destinations and then to staging when a registry says 404. A digest no registry could serve stays
unresolved and is counted, never guessed.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from function.deadline import Deadline
from function.index.digests import DigestIndex
from function.index.nesting import MAX_DEPTH, MAX_DESCENDANTS
from function.registry.client import ManifestNotFound, ManifestSource, RegistryError
from function.registry.content import Manifest

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 8
PROGRESS_SECONDS = 5.0
MAX_ERRORS_KEPT = 20


@dataclass(slots=True)
class Summary:
    pending: int = 0
    resolved: int = 0
    manifest_lists: int = 0
    not_found: int = 0
    failed: int = 0
    calls: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def add(self, other: Summary) -> None:
        """Count ``other`` (a later round) in as well."""
        self.pending += other.pending
        self.resolved += other.resolved
        self.manifest_lists += other.manifest_lists
        self.not_found += other.not_found
        self.failed += other.failed
        self.calls += other.calls
        self.seconds += other.seconds
        self.errors.extend(other.errors[: max(0, MAX_ERRORS_KEPT - len(self.errors))])

    def line(self) -> str:
        return (
            f"resolved {self.resolved} of {self.pending} digests to resolve ({self.manifest_lists} manifest "
            f"lists) with {self.calls} registry calls in {self.seconds:.1f}s; {self.not_found} found in no "
            f"registry, {self.failed} failed and stay unresolved"
        )


def candidate_paths(index: DigestIndex, only: Collection[str] | None = None) -> dict[str, list[str]]:
    """For each digest to resolve (of ``only``, when given): the repositories that should hold it, best first.

    Those are ``DigestIndex.to_resolve``: the unresolved ones, and lists resolved before platforms were recorded."""
    unresolved = set(index.to_resolve())
    if only is not None:
        unresolved &= set(only)
    candidates: dict[str, list[str]] = {}
    for project in index.projects.values():
        for image in project.images.values():
            for digest in image.digests:
                if digest not in unresolved:
                    continue
                paths = candidates.setdefault(digest, [])
                destinations = list(project.destinations)
                if destinations:
                    # A stable spread over the regions: each digest starts at its own destination.
                    start = zlib.crc32(digest.encode()) % len(destinations)
                    destinations = destinations[start:] + destinations[:start]
                paths.extend(f"{d}/{image.name}" for d in destinations)
                if project.staging:
                    paths.append(f"{project.staging}/{image.name}")
    return candidates


def fetch_first(
    registry: ManifestSource, digest: str, paths: list[str], *, deadline: Deadline | None = None
) -> Manifest | None:
    """The manifest from the first repository that serves it; None when every one says 404.

    A fault at one repository moves on to the next (another region usually answers); only when no
    repository served it and one of them failed is the fault raised, so the digest stays unresolved
    instead of being taken as absent."""
    fault: RegistryError | None = None
    for path in dict.fromkeys(paths):
        host, _, repository = path.partition("/")
        try:
            return registry.get_manifest(host, repository, digest, deadline=deadline)
        except ManifestNotFound:
            continue
        except RegistryError as error:
            fault = error
    if fault is not None:
        raise fault
    return None


@dataclass(frozen=True, slots=True)
class Tree:
    """What resolving one listed digest found: digest -> children for it and for each nested index among its
    descendants (empty for a single manifest), and for each list, its children's platforms in the same order."""

    children: dict[str, tuple[str, ...]]
    platforms: dict[str, tuple[str, ...]]


class TooManyDescendants(RegistryError):
    """A listed index with more than ``MAX_DESCENDANTS`` descendants: it is left unresolved (and logged).

    ``found`` holds what was resolved before the count was passed."""

    def __init__(self, digest: str, found: Tree) -> None:
        super().__init__(
            f"{digest} has more than {MAX_DESCENDANTS} descendants (indexes nested to depth {MAX_DEPTH}); "
            "it is left unresolved"
        )
        self.found = found


def fetch_tree(
    registry: ManifestSource, digest: str, paths: list[str], *, deadline: Deadline | None = None
) -> Tree | None:
    """What resolving the listed ``digest`` records: digest -> children for it (empty for a single
    manifest) and for every nested index among its descendants to ``MAX_DEPTH``, each fetched like the
    digest itself (``fetch_first``), with the platforms they name; None when every repository says 404.

    Children come only from ``get_manifest``'s verified, parsed bytes: never from a body its digest does
    not name. A nested index no repository serves is recorded as without children (its own children are
    then no children of ``digest``: an alarm, never a pass). Raises ``TooManyDescendants`` past
    ``MAX_DESCENDANTS``, and a fault as ``fetch_first`` does."""
    manifest = fetch_first(registry, digest, paths, deadline=deadline)
    if manifest is None:
        return None
    tree = Tree({}, {})
    _record(tree, digest, manifest)
    seen = set(tree.children[digest])
    level = [manifest] if manifest.is_index else []
    for _ in range(MAX_DEPTH - 1):
        if len(seen) > MAX_DESCENDANTS:
            raise TooManyDescendants(digest, tree)
        nested = [n for parent in level for n in parent.nested if n not in tree.children]
        level = []
        for child in dict.fromkeys(nested):
            found = fetch_first(registry, child, paths, deadline=deadline)
            _record(tree, child, found)
            if found is not None and found.is_index:
                seen.update(found.children)
                level.append(found)
    if len(seen) > MAX_DESCENDANTS:
        raise TooManyDescendants(digest, tree)
    return tree


def _record(tree: Tree, digest: str, manifest: Manifest | None) -> None:
    """Record ``manifest`` (None: served nowhere, so without children) as what ``digest`` resolved to."""
    index = manifest is not None and manifest.is_index
    tree.children[digest] = manifest.children if manifest is not None and index else ()
    if manifest is not None and index and manifest.children:
        tree.platforms[digest] = manifest.platforms


def resolve(
    index: DigestIndex,
    registry: ManifestSource,
    *,
    workers: int = DEFAULT_WORKERS,
    progress: Callable[[Summary], None] | None = None,
    only: Collection[str] | None = None,
) -> tuple[DigestIndex, Summary]:
    """Resolve every unresolved promoted digest of ``index`` (of ``only``, when given); returns the index
    with what was found, and what it did."""
    started = time.monotonic()
    calls_before = registry.calls
    candidates = candidate_paths(index, only)
    summary = Summary(pending=len(candidates))
    found: dict[str, tuple[str, ...]] = {}
    platforms: dict[str, tuple[str, ...]] = {}
    last_report = started
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="resolve") as pool:
        futures = {pool.submit(fetch_tree, registry, d, paths): d for d, paths in candidates.items()}
        for future in as_completed(futures):
            digest = futures[future]
            try:
                tree = future.result()
            except RegistryError as error:
                if isinstance(error, TooManyDescendants):
                    log.warning("%s", error)
                summary.failed += 1
                if len(summary.errors) < MAX_ERRORS_KEPT:
                    summary.errors.append(f"{digest}: {error}")
                continue
            if tree is None:
                summary.not_found += 1
                continue
            found.update(tree.children)
            platforms.update(tree.platforms)
            summary.resolved += 1
            summary.manifest_lists += bool(tree.children[digest])
            now = time.monotonic()
            if progress is not None and now - last_report >= PROGRESS_SECONDS:
                last_report = now
                summary.calls = registry.calls - calls_before
                summary.seconds = now - started
                progress(summary)
    summary.calls = registry.calls - calls_before
    summary.seconds = time.monotonic() - started
    return index.with_resolutions(found, platforms), summary
