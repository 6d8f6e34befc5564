"""A registry that lists like GCR / Artifact Registry, over the content of the tests' real registry.

``GET /v2/<repository>/tags/list`` is answered with Google's extension, in the format go-containerregistry
reads (``pkg/v1/google/list.go``, type ``Tags``, github.com/google/go-containerregistry):

    {"child": ["<name nested one level below>", ...],
     "manifest": {"sha256:<hex>": {"imageSizeBytes": "<n>", "mediaType": "<type>", "tag": ["<tag>", ...],
                                  "timeCreatedMs": "<ms>", "timeUploadedMs": "<ms>"}, ...},
     "name": "<repository>", "tags": ["<tag>", ...]}

``manifest`` holds every manifest of the repository, tagged or not, and a namespace that holds no
manifests of its own (such as ``region/images``) still answers with its ``child`` list. The answer is read
from the Debian registry's storage folder (its revision and tag links, the very data distribution serves
from), so it always agrees with what the registry behind serves for the manifests themselves; every other
request is forwarded to it. ``/v2/_catalog`` is refused as Artifact Registry refuses it to a reader of the
repositories, and recorded, so a test can prove it is never asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.support.proxy import LocalAnswer, RegistryProxy
from tests.support.registry import RegistryServer


class GcrListing(RegistryProxy):
    def __init__(self, registry: RegistryServer) -> None:
        super().__init__(registry.url)
        self.storage = registry.workdir / "storage" / "docker" / "registry" / "v2"
        self.serve(self.listing)

    def catalog_requests(self) -> int:
        return sum(1 for r in self.registry_requests() if r.path == "/v2/_catalog")

    def listing(self, method: str, path: str, query: str) -> LocalAnswer | None:
        """The answer in place of the registry's (the listing, the refused catalog), or None to forward."""
        if path == "/v2/_catalog":
            return _error(403, "DENIED", "listing the whole host is not permitted to a repository reader")
        if method != "GET" or not path.startswith("/v2/") or not path.endswith("/tags/list"):
            return None
        name = path[len("/v2/") : -len("/tags/list")]
        folder = self.storage / "repositories" / name
        if not folder.is_dir():
            return _error(404, "NAME_UNKNOWN", f"repository {name} not found")
        manifests = self._manifests(folder)
        tags = sorted({t for entry in manifests.values() for t in entry.tags})
        document = {
            "child": sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("_")),
            "manifest": {digest: entry.fields() for digest, entry in manifests.items()},
            "name": name,
            "tags": tags,
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(document).encode()

    def _manifests(self, folder: Path) -> dict[str, _Entry]:
        revisions = folder / "_manifests" / "revisions" / "sha256"
        tags: dict[str, list[str]] = {}
        for current in (folder / "_manifests" / "tags").glob("*/current/link"):
            tags.setdefault(current.read_text().strip(), []).append(current.parent.parent.name)
        manifests: dict[str, _Entry] = {}
        # A deleted manifest keeps its revision folder but loses the link: it is no longer held.
        for link in revisions.glob("*/link") if revisions.is_dir() else ():
            digest = link.read_text().strip()
            blob = self.storage / "blobs" / "sha256" / digest[7:9] / digest[7:] / "data"
            body = blob.read_bytes()
            uploaded = str(int(link.stat().st_mtime * 1000))
            manifests[digest] = _Entry(len(body), json.loads(body).get("mediaType", ""), tags.get(digest, []), uploaded)
        return manifests


@dataclass
class _Entry:
    size: int
    media_type: str
    tags: list[str]
    uploaded_ms: str

    def fields(self) -> dict[str, object]:
        return {
            "imageSizeBytes": str(self.size),
            "mediaType": self.media_type,
            "tag": sorted(self.tags),
            "timeCreatedMs": "0",
            "timeUploadedMs": self.uploaded_ms,
        }


def _error(status: int, code: str, message: str) -> LocalAnswer:
    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
    return status, {"Content-Type": "application/json"}, body
