"""Reading past verdict lines back as the events they decided, for ``audit --replay``.

The input is untrusted text an operator pasted or exported: JSON lines as the CLI and the functions write
them, or the JSON array that ``gcloud logging read --format=json`` writes, each entry holding the line in
``jsonPayload`` (https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry). Anything that is not
a verdict line of a registry event is counted as skipped, never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from function.errors import Permanent

ACTIONS = ("INSERT", "DELETE")


class ReplayError(Permanent):
    """The input as a whole cannot be read (a JSON array that does not parse)."""


@dataclass(frozen=True, slots=True)
class Past:
    """One past event: the payload it came from, and what was decided then."""

    payload: str
    previous: dict[str, Any]


@dataclass(slots=True)
class Replay:
    events: list[Past] = field(default_factory=list)
    skipped: int = 0
    """Lines that were not verdict lines of a registry event (sweep findings, other log lines, damage)."""


def read(data: bytes) -> Replay:
    """Every past event of ``data``, oldest first where the entries say when they were written."""
    replay = Replay()
    for line in _lines(data):
        past = _past(line)
        if past is None:
            replay.skipped += 1
        else:
            replay.events.append(past)
    return replay


def _lines(data: bytes) -> list[object]:
    if data.lstrip()[:1] == b"[":
        try:
            entries = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise ReplayError(f"the input starts as a JSON array but is not one ({error})") from None
        if not isinstance(entries, list):
            raise ReplayError("the input starts as a JSON array but is not one")
        # gcloud writes the newest entry first; the events are replayed in the order they happened.
        timed = [e for e in entries if isinstance(e, Mapping) and isinstance(e.get("timestamp"), str)]
        if len(timed) == len(entries):
            entries = sorted(timed, key=lambda e: str(e["timestamp"]))
        return [e.get("jsonPayload") if isinstance(e, Mapping) else None for e in entries]
    lines: list[object] = []
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            lines.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            lines.append(None)
    return lines


def _past(line: object) -> Past | None:
    """The event a verdict line decided, or None when the line is not one a registry event got."""
    if not isinstance(line, Mapping) or "verdict" not in line or line.get("source", "event") != "event":
        return None
    action, path, digest, tag = (line.get(key) for key in ("action", "path", "digest", "tag"))
    if action not in ACTIONS or not isinstance(path, str) or not path:
        return None
    if not isinstance(digest, str | None) or not isinstance(tag, str | None) or (digest is None and tag is None):
        return None
    event = {"action": action}
    if digest is not None:
        event["digest"] = f"{path}@{digest}"
    if tag is not None:
        event["tag"] = f"{path}:{tag}"
    previous = {key: line.get(key) for key in ("verdict", "reason", "index")}
    return Past(orjson.dumps(event).decode(), previous)
