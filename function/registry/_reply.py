"""What one request to a registry gives back: a `Reply` whatever its status, or a `TransportError`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class TransportError(Exception):
    """No usable answer came back: the message names the request and what went wrong."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # case-insensitive, as requests gives them
    body: bytes
    attempts: int  # requests sent for this reply, retries included
