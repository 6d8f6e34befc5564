"""What a registry holds under some root repositories: each repository, and the manifests it holds.

Two ways of listing, chosen per host:

- The GCR / Artifact Registry extension of ``GET /v2/<repository>/tags/list``: besides ``tags`` the answer
  has a ``manifest`` map of every digest in the repository, tagged or not (``{"mediaType", "tag": [...],
  "imageSizeBytes", "timeCreatedMs", "timeUploadedMs"}``), and a ``child`` list of the names nested one
  level below it (go-containerregistry, ``pkg/v1/google/list.go``). One answer per repository is a complete
  listing, and the walk goes down from each root through ``child``. ``/v2/_catalog`` is never asked there:
  on Artifact Registry it spans the whole host and needs more than read access to the repositories.
- Plain OCI distribution: ``/v2/_catalog`` (paginated) names the repositories, ``tags/list`` (paginated)
  their tags, and one HEAD per tag gives its digest and media type. Untagged manifests cannot be listed
  this way, so such a listing is marked incomplete and the caller asks for what it expected (HEAD).

Google hosts always use the extension; any other host is asked ``tags/list`` of its first root once, and
uses the extension when that answer carries it.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from function.reference import REPOSITORY_RE, InvalidReference, is_digest, is_tag, prefix_over
from function.registry._http import is_google_host
from function.registry.client import (
    JsonPage,
    ManifestNotFound,
    RegistryClient,
    RegistryError,
    RegistryUnavailable,
)

log = logging.getLogger(__name__)

# As go-containerregistry asks Google registries: one page holds a whole repository there.
EXTENSION_PAGE = 10000
PLAIN_PAGE = 1000
# A registry that keeps linking to a next page is not followed forever.
MAX_PAGES = 1000
# What one listing (a host's catalog, one repository's tags) may send in all, as the contract bounds it:
# pages are merged as they arrive, so this bounds what the sweep holds whatever a registry sends.
MAX_LISTING_BYTES = 64 * 1024 * 1024


class UnreadableListing(RegistryUnavailable):
    """A listing answer that is not what the API documents; nothing in it is trusted."""


class UnboundedListing(UnreadableListing):
    """A listing that links back to a page already read, or passes ``MAX_LISTING_BYTES``: what it named
    is dropped and the part it lists is left unswept, never taken as empty."""


@dataclass(frozen=True, slots=True)
class Held:
    """One manifest a repository holds (small: a listing may hold hundreds of thousands)."""

    media_type: str | None
    tags: frozenset[str] = frozenset()
    uploaded: dt.datetime | None = None
    """When it was pushed, where the listing says (the extension's ``timeUploadedMs``)."""

    def tagged(self, tags: frozenset[str]) -> Held:
        return self if tags <= self.tags else Held(self.media_type, self.tags | tags, self.uploaded)


@dataclass
class Listed:
    """A repository and the manifests it holds.

    ``complete``: every manifest, untagged ones included (the extension); otherwise only tagged ones are
    known and anything else expected has to be asked for. ``exists`` is False for a name the registry does
    not know (then it holds nothing)."""

    path: str
    manifests: dict[str, Held]
    complete: bool
    exists: bool = True


@dataclass(frozen=True)
class Unlisted:
    """A part of the registry that could not be listed; ``nested``: what is below ``path`` is unknown too."""

    path: str
    reason: str
    nested: bool


class HostWalk:
    """The repositories under ``roots`` on one host, listed one at a time as the walk is iterated.

    Not thread-safe: one walk per host, consumed by one thread. ``pending()`` names what the walk has not
    reached yet, for a caller that stops early."""

    def __init__(
        self,
        registry: RegistryClient,
        host: str,
        roots: Sequence[str],
        *,
        skip: Callable[[str], bool] = lambda path: False,
        page_size: int = PLAIN_PAGE,
        on_listing: Callable[[str], None] | None = None,
    ) -> None:
        """``on_listing`` hears each part (the host, then each repository) as its listing starts."""
        self.registry = registry
        self.on_listing = on_listing
        self.page_size = page_size
        self.host = host
        self.roots = outermost(roots)
        self.skip = skip
        self.extension: bool | None = True if is_google_host(host) else None
        self._queue: deque[str] = deque()
        self._started = False
        self._visited: set[str] = set()

    def pending(self) -> list[Unlisted]:
        """What is not listed yet, as parts of the registry (the host itself before the walk started)."""
        if not self._started:
            return [Unlisted(self.host, "not reached", nested=True)]
        return [Unlisted(f"{self.host}/{name}", "not reached", nested=bool(self.extension)) for name in self._queue]

    def retry(self, parts: Sequence[Unlisted]) -> None:
        """List these parts again on the next iteration (the whole host again if it is among them)."""
        if any(part.path == self.host for part in parts):
            self._started = False
            self._queue.clear()
            self._visited.clear()
            self.extension = True if is_google_host(self.host) else None
            return
        self._queue.extend(part.path.removeprefix(f"{self.host}/") for part in parts)

    def __iter__(self) -> Iterator[Listed | Unlisted]:
        if not self._started:
            self._started = True
            self._listing(self.host)
            try:
                first = self._start()
            except RegistryError as error:
                yield Unlisted(self.host, short_reason(error), nested=True)
                return
            if first is not None:
                yield first
        while self._queue:
            name = self._queue.popleft()
            self._listing(f"{self.host}/{name}")
            try:
                yield self._list_extension(name) if self.extension else self._list_plain(name)
            # A listed name over the registry's length limit is refused by the client, sending nothing.
            except (RegistryError, InvalidReference) as error:
                yield Unlisted(f"{self.host}/{name}", short_reason(error), nested=bool(self.extension))

    def _listing(self, part: str) -> None:
        if self.on_listing is not None:
            self.on_listing(part)

    def unreached(self, repository: str) -> Listed:
        """A repository expected on this host that the walk did not reach; raises RegistryError.

        The extension lists it (one call, in case the walk's ``child`` lists missed it); on a plain
        registry the catalog already said that it does not exist, and what is expected there is asked
        for one manifest at a time."""
        if self.extension:
            return self._list_extension(repository, walk=False)
        return Listed(f"{self.host}/{repository}", {}, complete=False, exists=False)

    # --- the start: which listing, and what to list ---------------------------------------------------

    def _start(self) -> Listed | Unlisted | None:
        """Choose the listing and fill the queue; returns the first root's listing (or why it has none)
        when the probe gave it."""
        if self.extension is None:
            probe = self.roots[0]
            try:
                # A page size every registry accepts (some refuse more than 1000), as the answer may be plain.
                first_path = f"/v2/{probe}/tags/list?n={self.page_size}"
                page = self.registry.get_json(self.host, first_path, scope=_pull(probe))
                self.extension = _has_extension(page.document)
            except ManifestNotFound:
                self.extension = False
            if self.extension:
                self._queue.extend(self.roots[1:])
                self._visited.add(probe)
                try:
                    return self._extension_listing(probe, page, first_path)
                except RegistryError as error:
                    return Unlisted(f"{self.host}/{probe}", short_reason(error), nested=True)
        if self.extension:
            self._queue.extend(self.roots)
            return None
        self._queue.extend(self._catalog())
        return None

    def _catalog(self) -> list[str]:
        names: list[str] = []
        for document in self._pages(f"/v2/_catalog?n={self.page_size}", "registry:catalog:*"):
            repositories = document.get("repositories") if isinstance(document, dict) else None
            if not isinstance(repositories, list) or not all(isinstance(r, str) for r in repositories):
                raise UnreadableListing(f"{self.host}/v2/_catalog: the answer has no list of repository names")
            names += repositories
        malformed = next((n for n in names if not REPOSITORY_RE.fullmatch(n)), None)
        if malformed is not None:
            raise UnreadableListing(f"{self.host}/v2/_catalog: {malformed!r:.100} is not a repository name")
        under = (n for n in names if prefix_over(n, self.roots) is not None)
        return sorted({n for n in under if not self.skip(f"{self.host}/{n}")})

    # --- the extension ------------------------------------------------------------------------------

    def _list_extension(self, name: str, *, walk: bool = True) -> Listed:
        path = f"{self.host}/{name}"
        if walk:
            self._visited.add(name)
        first_path = f"/v2/{name}/tags/list?n={EXTENSION_PAGE}"
        try:
            page = self.registry.get_json(self.host, first_path, scope=_pull(name))
        except ManifestNotFound:
            return Listed(path, {}, complete=True, exists=False)
        return self._extension_listing(name, page, first_path, walk=walk)

    def _extension_listing(self, name: str, first: JsonPage, first_path: str, *, walk: bool = True) -> Listed:
        manifests: dict[str, Held] = {}
        children: list[str] = []
        for document in self._pages(first_path, _pull(name), first):
            held, nested = _extension_entries(document, f"{self.host}/{name}")
            for digest, entry in held.items():
                known = manifests.get(digest)
                manifests[digest] = entry if known is None else known.tagged(entry.tags)
            children += nested
        if walk:
            for child in children:
                nested_name = f"{name}/{child}"
                if not REPOSITORY_RE.fullmatch(nested_name):
                    raise UnreadableListing(f"{self.host}/{name}: child {child!r:.100} is not a repository name")
                if nested_name not in self._visited and not self.skip(f"{self.host}/{nested_name}"):
                    self._visited.add(nested_name)
                    self._queue.append(nested_name)
        return Listed(f"{self.host}/{name}", manifests, complete=True)

    # --- plain distribution -------------------------------------------------------------------------

    def _list_plain(self, name: str) -> Listed:
        path = f"{self.host}/{name}"
        tags: list[str] = []
        try:
            for document in self._pages(f"/v2/{name}/tags/list?n={self.page_size}", _pull(name)):
                listed = document.get("tags") if isinstance(document, dict) else None
                if listed is not None and (
                    not isinstance(listed, list) or not all(isinstance(t, str) and is_tag(t) for t in listed)
                ):
                    raise UnreadableListing(f"{path}: tags/list answered with tags that are not valid tag names")
                tags += listed or []
        except ManifestNotFound:
            return Listed(path, {}, complete=False, exists=False)
        manifests: dict[str, Held] = {}
        for tag in tags:
            try:
                digest, media_type = self._head(name, tag)
            except ManifestNotFound:
                continue  # untagged between the listing and the HEAD: nothing to decide under that tag
            manifests[digest] = manifests.get(digest, Held(media_type)).tagged(frozenset({tag}))
        return Listed(path, manifests, complete=False)

    def _head(self, name: str, tag: str) -> tuple[str, str | None]:
        head = self.registry.head_manifest(self.host, name, tag)
        if head.digest is not None:
            return head.digest, head.media_type
        # A registry that omits Docker-Content-Digest: the digest is that of the bytes it serves.
        manifest = self.registry.get_manifest(self.host, name, tag)
        return manifest.digest, manifest.media_type

    def _pages(self, path: str, scope: str, first: JsonPage | None = None) -> Iterator[Any]:
        """Each page's document in turn, from ``path`` (whose answer is ``first`` when already read) along
        its ``Link``s; the caller merges each before the next is asked, so no raw page is kept.

        Raises ``UnboundedListing`` on a link back to a page already read, or once the answers pass
        ``MAX_LISTING_BYTES`` (then what was merged must be dropped: the listing is not complete)."""
        where = f"{self.host}{path.partition('?')[0]}"
        read: set[str] = set()
        total = 0
        page = first
        while True:
            if page is None:
                page = self.registry.get_json(self.host, path, scope=scope)
            read.add(path)
            total += page.size
            if total > MAX_LISTING_BYTES:
                raise UnboundedListing(
                    f"{where}: the listing passed {MAX_LISTING_BYTES // (1024 * 1024)} MiB after {len(read)} pages; "
                    "not followed further"
                )
            next_path = page.next
            yield page.document
            page = None
            if next_path is None:
                return
            if next_path in read:
                raise UnboundedListing(f"{where}: the listing links back to a page already read; not followed further")
            if len(read) >= MAX_PAGES:
                raise UnreadableListing(f"{where}: more than {MAX_PAGES} pages; not followed further")
            path = next_path


def outermost(roots: Sequence[str]) -> list[str]:
    """The roots that are not nested in another root, in order: each repository is listed once."""
    unique = sorted(set(roots), key=len)
    kept: list[str] = []
    for root in unique:
        if prefix_over(root, kept) is None:
            kept.append(root)
    return kept


def _has_extension(document: Any) -> bool:
    return isinstance(document, dict) and ("manifest" in document or "child" in document)


def _extension_entries(document: Any, where: str) -> tuple[dict[str, Held], list[str]]:
    """The ``manifest`` map and ``child`` list of one extension answer, checked (it is untrusted)."""
    if not isinstance(document, dict):
        raise UnreadableListing(f"{where}: tags/list answered with JSON that is not an object")
    raw_manifests = document.get("manifest") or {}
    raw_children = document.get("child") or []
    if not isinstance(raw_manifests, dict) or not isinstance(raw_children, list):
        raise UnreadableListing(f"{where}: tags/list has a 'manifest' that is no map or a 'child' that is no list")
    manifests: dict[str, Held] = {}
    for digest, info in raw_manifests.items():
        if not is_digest(digest) or not isinstance(info, dict):
            raise UnreadableListing(f"{where}: tags/list names {digest!r:.100}, which is not a sha256 digest")
        media_type = info.get("mediaType")
        tags = info.get("tag") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) and is_tag(t) for t in tags):
            raise UnreadableListing(f"{where}: the tags of {digest} are not a list of valid tag names")
        # Interned: a listing repeats a handful of media types for every digest.
        kind = sys.intern(media_type) if isinstance(media_type, str) and media_type else None
        manifests[digest] = Held(kind, frozenset(tags), _uploaded(info.get("timeUploadedMs")))
    if not all(isinstance(child, str) and child for child in raw_children):
        raise UnreadableListing(f"{where}: tags/list has a 'child' entry that is not a name")
    return manifests, list(raw_children)


def _uploaded(value: Any) -> dt.datetime | None:
    """``timeUploadedMs`` (milliseconds since the epoch, as a string), or None where it is absent or not
    such a number: an upload time unknown counts as recent, the side on which nothing goes unchecked."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 15:
        return None
    return dt.datetime.fromtimestamp(int(value) / 1000, tz=dt.UTC)


def _pull(name: str) -> str:
    return f"repository:{name}:pull"


def short_reason(error: RegistryError | InvalidReference) -> str:
    """The first sentence of a registry error: enough to name why a part was not swept."""
    return str(error).split(". ", 1)[0][:300]
