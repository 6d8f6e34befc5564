"""Verdict lines as a table for people (``--format table``), ending with the count of each verdict.

The JSON lines stay the record; the table shortens digests and long reasons to fit a terminal."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from function import verdict as v

# Most reassuring first, so the alarms end up next to the prompt.
ORDER = (v.Kind.VERIFIED, v.Kind.IGNORED, v.Kind.RETRY, v.Kind.MISSING, v.Kind.MALFORMED, v.Kind.REJECTED)
HEADER = ("verdict", "basis / reason", "action", "repository@digest:tag", "image", "calls")
SHORT_DIGEST = len("sha256:") + 12
MAX_CELL = 72


def render_verdicts(lines: Sequence[Mapping[str, Any]]) -> str:
    """One row per verdict line, in order, then e.g. ``4 verdicts: 2 VERIFIED, 1 RETRY, 1 REJECTED``."""
    rows = [HEADER, *(_row(line) for line in lines)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    rows.insert(1, tuple("-" * width for width in widths))
    text = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join([*text, "", counts(lines)]) + "\n"


def counts(lines: Sequence[Mapping[str, Any]]) -> str:
    seen = Counter(str(line.get("verdict")) for line in lines)
    known = [kind for kind in ORDER if seen[kind]]
    others = sorted(kind for kind in seen if kind not in ORDER)
    parts = [f"{seen[kind]} {kind}" for kind in [*known, *others]]
    noun = "verdict" if len(lines) == 1 else "verdicts"
    return f"{len(lines)} {noun}" + (": " + ", ".join(parts) if parts else "")


def _row(line: Mapping[str, Any]) -> tuple[str, ...]:
    return (
        str(line.get("verdict") or ""),
        _cut(str(line.get("basis") or line.get("reason") or "")),
        str(line.get("action") or "-"),
        _reference(line),
        str(line.get("image") or "-"),
        str(line.get("registry_calls", "")),
    )


def _reference(line: Mapping[str, Any]) -> str:
    path = line.get("path")
    if not path:
        return "(not a registry event)"
    text = str(path)
    if line.get("digest"):
        text += f"@{str(line['digest'])[:SHORT_DIGEST]}…"
    if line.get("tag"):
        text += f":{line['tag']}"
    return text


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
