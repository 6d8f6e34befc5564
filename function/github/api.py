"""GETs from GitHub's REST API, or from a server answering in its format (``AUDITOR_HEAD_URL``,
``AUDITOR_COMPARE_URL``): https only (plain http on loopback), a bounded answer, and the optional token.

The token (``AUDITOR_GITHUB_TOKEN``) goes in the ``Authorization`` header only: it never appears in a
URL, an error or a log line. GitHub allows 60 anonymous API requests an hour per source address, which
Cloud Run's instances share; a token raises that to the token's own limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from function.errors import Retryable
from function.github.checkout import trusted_url

TIMEOUT_SECONDS = 10.0
# https://docs.github.com/en/rest/about-the-rest-api/api-versions
API_VERSION = "2022-11-28"


def get(
    url: str,
    *,
    token: str | None,
    error: type[Retryable],
    max_bytes: int,
    timeout: float = TIMEOUT_SECONDS,
) -> Mapping[str, Any]:
    """The JSON object GitHub answers at ``url``; ``error`` for a refusal, a fault, or anything else."""
    if not trusted_url(url):
        raise error(f"refusing {url}: GitHub is asked over https (http only on loopback)")
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    # requests loads with the first GET, not with every importer: the CLI's stats asks only with --head.
    import requests

    try:
        with requests.get(url, headers=headers, timeout=timeout, stream=True) as response:
            if response.status_code != 200:
                hint = ""
                if response.status_code in (403, 429):
                    # GitHub answers an exhausted rate limit with 403 or 429.
                    hint = "; GitHub's API may be rate-limiting this address (set AUDITOR_GITHUB_TOKEN)"
                raise error(f"GET {url} answered {response.status_code}: {response.text[:200]}{hint}")
            body = response.raw.read(max_bytes + 1, decode_content=True)
    except requests.RequestException as failure:
        raise error(f"GET {url} failed: {failure}") from None
    if len(body) > max_bytes:
        raise error(f"GET {url} answered more than {max_bytes} bytes")
    return json_object(body, url, error)


def json_object(body: bytes, url: str, error: type[Retryable]) -> Mapping[str, Any]:
    """``body`` as a JSON object; ``error`` naming ``url`` when it is not one."""
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise error(f"{url} did not answer JSON") from None
    if not isinstance(document, Mapping):
        raise error(f"{url} did not answer a JSON object")
    return document
