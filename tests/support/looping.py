"""A ``tags/list`` that never ends: pages of about 4 MiB whose ``Link`` points back at the page itself, or
on to one more page of new digests for ever.

The pages follow the OCI distribution spec's pagination (``GET /v2/<name>/tags/list?n=<n>&last=<tag>``
answered with ``{"name", "tags"}`` and a ``Link: <...>; rel="next"`` header, distribution-spec
``spec.md``, "Listing Tags"), or, with ``extension``, Google's ``manifest`` map as go-containerregistry
reads it (``pkg/v1/google/list.go``, type ``Tags``; see tests/support/gcr.py). A ``RegistryProxy`` serves
them in place of the registry (``serve``), for one repository or for every one.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import parse_qs

from tests.support.proxy import LocalAnswer, Responder

# Just under the registry client's 4 MiB answer limit: the largest page it reads.
PAGE_BYTES = 4 * 1024 * 1024 - 64 * 1024
_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"


def looping(
    repository: str | None,
    *,
    extension: bool = False,
    onward: bool = False,
    page_bytes: int = PAGE_BYTES,
    otherwise: Responder | None = None,
) -> Responder:
    """Answers ``tags/list`` of ``repository`` (of any repository when None; the host's ``/v2/_catalog``
    when "_catalog") with pages of about ``page_bytes``; each links back to itself, or with ``onward`` to a
    next page of new entries. Every other request goes to ``otherwise`` (None: to the registry)."""
    listing = "/v2/_catalog" if repository == "_catalog" else None

    def answer(method: str, path: str, query: str) -> LocalAnswer | None:
        name = path.removeprefix("/v2/").removesuffix("/tags/list")
        tags = path.startswith("/v2/") and path.endswith("/tags/list") and repository in (None, name)
        if method != "GET" or not (tags or path == listing):
            return otherwise(method, path, query) if otherwise else None
        page = int((parse_qs(query).get("last") or ["t0"])[0].rpartition("t")[2] or 0)
        n = (parse_qs(query).get("n") or ["1000"])[0]
        body = _page(name, page, extension, page_bytes, catalog=path == listing)
        following = f"?n={n}&last=t{page + 1}" if onward else f"?{query}"
        headers = {"Content-Type": "application/json", "Link": f'<{path}{following}>; rel="next"'}
        return 200, headers, body

    return answer


def _page(name: str, page: int, extension: bool, page_bytes: int, *, catalog: bool) -> bytes:
    if not extension:
        per_name = len(f'"t{page}-000000", ')
        names = [f"t{page}-{i:06d}" for i in range(page_bytes // per_name)]
        return json.dumps({"repositories": names} if catalog else {"name": name, "tags": names}).encode()
    entry = {"imageSizeBytes": "1", "mediaType": _MEDIA_TYPE, "tag": [], "timeCreatedMs": "0", "timeUploadedMs": "0"}
    per_entry = len(json.dumps({"sha256:" + "0" * 64: entry})) + 2
    manifests = {
        "sha256:" + hashlib.sha256(f"{name} {page} {i}".encode()).hexdigest(): entry
        for i in range(page_bytes // per_entry)
    }
    return json.dumps({"child": [], "manifest": manifests, "name": name, "tags": []}).encode()
