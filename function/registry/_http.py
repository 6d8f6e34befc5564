"""What the registry client and its transport share, without importing the transport's HTTP libraries: a
`Reply` or a `TransportError`, the statuses worth another attempt, the longest one request may take, and
how a host is spoken to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from function.reference import is_loopback

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# The longest one request may take, its body included, whatever the per-read timeout lets through.
MAX_REQUEST_SECONDS = 60.0


class TransportError(Exception):
    """No usable answer came back: the message names the request and what went wrong."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # case-insensitive, as requests gives them
    body: bytes
    attempts: int  # requests sent for this reply, retries included


def scheme_for(netloc: str) -> str:
    return "http" if is_loopback(netloc) else "https"


def is_google_host(netloc: str) -> bool:
    name = netloc.rsplit(":", 1)[0].lower()
    return name == "gcr.io" or name.endswith((".gcr.io", "-docker.pkg.dev"))
