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
            f"resolved {self.resolved} of {self.pending} unresolved digests ({self.manifest_lists} manifest "
            f"lists) with {self.calls} registry calls in {self.seconds:.1f}s; {self.not_found} found in no "
            f"registry, {self.failed} failed and stay unresolved"
        )


def candidate_paths(index: DigestIndex, only: Collection[str] | None = None) -> dict[str, list[str]]:
    """For each unresolved digest (of ``only``, when given): the repositories that should hold it, best first."""
    unresolved = index.unresolved()
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
    last_report = started
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="resolve") as pool:
        futures = {pool.submit(fetch_first, registry, d, paths): d for d, paths in candidates.items()}
        for future in as_completed(futures):
            digest = futures[future]
            try:
                manifest = future.result()
            except RegistryError as error:
                summary.failed += 1
                if len(summary.errors) < MAX_ERRORS_KEPT:
                    summary.errors.append(f"{digest}: {error}")
                continue
            if manifest is None:
                summary.not_found += 1
                continue
            found[digest] = manifest.children if manifest.is_index else ()
            summary.resolved += 1
            summary.manifest_lists += manifest.is_index
            now = time.monotonic()
            if progress is not None and now - last_report >= PROGRESS_SECONDS:
                last_report = now
                summary.calls = registry.calls - calls_before
                summary.seconds = now - started
                progress(summary)
    summary.calls = registry.calls - calls_before
    summary.seconds = time.monotonic() - started
    return index.with_resolutions(found), summary
