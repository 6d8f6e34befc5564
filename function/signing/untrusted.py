"""Reading what a registry serves (JSON, base64) so that any malformation becomes a failed check."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from function.signing.results import CheckFailedError, SignatureCheck

_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "integer"}
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


def subject_hex(subject_digest: str) -> str:
    """The hex of the caller's `sha256:<hex>` digest; anything else is a programming error, not a bad signature."""
    match = _DIGEST.fullmatch(subject_digest)
    if match is None:
        raise ValueError(f"subject digest {subject_digest!r} is not sha256:<64 lowercase hex>")
    return match[1]


def json_object(data: str | bytes, check: SignatureCheck, what: str) -> dict[str, Any]:
    """`data` parsed as a JSON object."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        # RecursionError: deeply nested arrays are valid JSON that the parser cannot descend.
        raise CheckFailedError(check, f"{what} is not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise CheckFailedError(check, f"{what} is not a JSON object")
    return value


def member(obj: object, path: str, kind: type, check: SignatureCheck, what: str) -> Any:
    """The value at dotted `path` inside `obj`, which must be of type `kind` (a bool is never an int)."""
    value = obj
    for name in path.split("."):
        value = value.get(name) if isinstance(value, dict) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CheckFailedError(check, f"{what} has no {path} ({_JSON_TYPES.get(kind, kind.__name__)})")
    return value


def base64_bytes(text: str, check: SignatureCheck, what: str) -> bytes:
    """Standard base64 (padded), strictly: stray characters are a malformation, not noise."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckFailedError(check, f"{what} is not base64 ({exc})") from exc
