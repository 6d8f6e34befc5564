"""Registry events: the payloads the registry publishes on its ``gcr`` Pub/Sub topic.

A payload is ``{"action": "INSERT"|"DELETE", "digest": "<path>@sha256:<hex>", "tag": "<path>:<tag>"}``
with either reference possibly absent. Payloads are untrusted: anything off the grammar becomes a
``MalformedEvent`` carrying a short reason and whatever could still be read, never another exception.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from function.reference import InvalidReference, Reference, parse_digest_reference, parse_tag_reference

ACTIONS = frozenset({"INSERT", "DELETE"})
# A registry reference is at most a few hundred bytes; a larger payload is not a registry event.
MAX_PAYLOAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Event:
    action: str
    path: str
    digest: str | None
    tag: str | None


class MalformedEvent(ValueError):
    """A payload that is not a registry event. Keeps the fields that were readable, for the verdict."""

    def __init__(
        self,
        reason: str,
        *,
        action: str | None = None,
        path: str | None = None,
        digest: str | None = None,
        tag: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.action = action
        self.path = path
        self.digest = digest
        self.tag = tag


def parse_payload(raw: bytes | str) -> Event:
    """Decode one JSON payload and parse it."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise MalformedEvent(f"payload is {len(raw)} bytes, more than {MAX_PAYLOAD_BYTES}")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise MalformedEvent(f"payload is not JSON: {error}") from None
    return parse_event(document)


def parse_event(document: Any) -> Event:
    if not isinstance(document, Mapping):
        raise MalformedEvent(f"payload is a JSON {type(document).__name__}, not an object")
    raw_action = document.get("action")
    action = raw_action if isinstance(raw_action, str) else None
    references: dict[str, Reference] = {}
    problems: list[str] = []
    for field, parse in (("digest", parse_digest_reference), ("tag", parse_tag_reference)):
        text = document.get(field)
        # Absent, null and "" all mean "no such reference": producers differ in how they leave it out.
        if text is None or text == "":
            continue
        if not isinstance(text, str):
            problems.append(f"{field} must be a string, got {type(text).__name__}")
            continue
        try:
            references[field] = parse(text)
        except InvalidReference as error:
            problems.append(f"{field}: {error}")
    paths = {reference.path for reference in references.values()}
    digest = references["digest"].digest if "digest" in references else None
    tag = references["tag"].tag if "tag" in references else None
    path = next(iter(paths)) if len(paths) == 1 else None
    if action not in ACTIONS:
        problems.insert(0, f"action must be INSERT or DELETE, got {raw_action!r}")
    if not references and not problems:
        problems.append("payload has neither a digest nor a tag reference")
    if len(paths) > 1:
        problems.append(f"digest and tag name different repositories: {sorted(paths)}")
    if problems:
        raise MalformedEvent("; ".join(problems), action=action, path=path, digest=digest, tag=tag)
    assert action is not None and path is not None
    return Event(action=action, path=path, digest=digest, tag=tag)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One Pub/Sub message as the function receives it."""

    data: bytes
    message_id: str | None
    # When Pub/Sub published it (wall-clock epoch seconds, from `publishTime`), None when absent or unreadable.
    published_at: float | None = None


def _decode_data(data: Any) -> bytes:
    if not isinstance(data, str):
        raise MalformedEvent("Pub/Sub message has no base64 'data'")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedEvent("Pub/Sub message data is not valid base64") from None


def unwrap_pubsub(body: Any) -> Delivery:
    """The message inside a CloudEvent's data or a plain push body: both are ``{"message": {...}}``."""
    if isinstance(body, bytes | str):
        # CloudEvent data arrives undecoded when the sender did not declare it JSON.
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise MalformedEvent("CloudEvent data is not JSON") from None
    if not isinstance(body, Mapping) or not isinstance(body.get("message"), Mapping):
        raise MalformedEvent("request is neither a Pub/Sub CloudEvent nor a Pub/Sub push body")
    message = body["message"]
    message_id = message.get("messageId") or message.get("message_id")
    return Delivery(
        data=_decode_data(message.get("data")),
        message_id=str(message_id) if message_id is not None else None,
        published_at=publish_time(message.get("publishTime") or message.get("publish_time")),
    )


_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def publish_time(text: Any) -> float | None:
    """A Pub/Sub `publishTime` (RFC 3339, up to nanoseconds) as epoch seconds; None when it is not one."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    try:
        moment = dt.datetime.fromisoformat(
            _FRACTION.sub(r"\1", text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        )
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()
