"""Verdict lines as a table for people (``--format table``), ending with the count of each verdict.

The JSON lines stay the record; the table shortens digests, long reasons and, where a row would pass
``WIDTH`` columns, the middle of the repository, so that every row fits a terminal."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from function import verdict as v

# Most reassuring first, so the alarms end up next to the prompt.
ORDER = (v.Kind.VERIFIED, v.Kind.IGNORED, v.Kind.RETRY, v.Kind.MISSING, v.Kind.MALFORMED, v.Kind.REJECTED)
# No image column: the repository ends in the image's name, and the width is the reference's.
HEADER = ("verdict", "basis / reason", "action", "repository:tag@digest", "calls")
REFERENCE_COLUMN = HEADER.index("repository:tag@digest")
SHORT_DIGEST = len("sha256:") + 12
# A parent is named by a prefix that `lookup` still takes (6 hex or more).
SHORT_PARENT = len("sha256:") + 8
MAX_CELL = 32
WIDTH = 120
GAP = "  "


def render_verdicts(lines: Sequence[Mapping[str, Any]]) -> str:
    """One row per verdict line, in order, then e.g. ``4 verdicts: 2 VERIFIED, 1 RETRY, 1 REJECTED``."""
    rows = [HEADER, *(_row(line) for line in lines)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    room = WIDTH - sum(widths) - len(GAP) * (len(HEADER) - 1) + widths[REFERENCE_COLUMN]
    if widths[REFERENCE_COLUMN] > room:
        widths[REFERENCE_COLUMN] = room
        rows = [_fitted(row, room) for row in rows]
    rows.insert(1, tuple("-" * width for width in widths))
    text = [GAP.join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join([*text, "", counts(lines)]) + "\n"


def counts(lines: Sequence[Mapping[str, Any]]) -> str:
    seen = Counter(str(line.get("verdict")) for line in lines)
    known = [kind for kind in ORDER if seen[kind]]
    others = sorted(kind for kind in seen if kind not in ORDER)
    parts = [f"{seen[kind]} {kind}" for kind in [*known, *others]]
    noun = "verdict" if len(lines) == 1 else "verdicts"
    return f"{len(lines)} {noun}" + (": " + ", ".join(parts) if parts else "")


def _row(line: Mapping[str, Any]) -> tuple[str, ...]:
    why = str(line.get("basis") or line.get("reason") or "")
    if line.get("parent") and line.get("verdict") != v.Kind.VERIFIED:
        # A missing platform child: which list it belongs to is what an operator re-pushes.
        why += f" child of {str(line['parent'])[:SHORT_PARENT]}…"
    previous = line.get("previous")
    if isinstance(previous, Mapping):
        # A replayed event: what it was decided then, so the change reads in one row.
        was = " ".join(str(previous.get(key)) for key in ("verdict", "reason") if previous.get(key))
        return (str(line.get("verdict") or ""), _cut(f"{why} (was {was})", MAX_CELL + 12), *_rest(line))
    return (
        str(line.get("verdict") or ""),
        _cut(why),
        *_rest(line),
    )


def _rest(line: Mapping[str, Any]) -> tuple[str, ...]:
    return (str(line.get("action") or "-"), _reference(line), str(line.get("registry_calls", "")))


def _reference(line: Mapping[str, Any]) -> str:
    path = line.get("path")
    if not path:
        return "(not a registry event)"
    text = str(path)
    if line.get("tag"):
        text += f":{line['tag']}"
    if line.get("digest"):
        text += f"@{str(line['digest'])[:SHORT_DIGEST]}…"
    return text


def _fitted(row: tuple[str, ...], room: int) -> tuple[str, ...]:
    """``row`` with its reference cut to ``room``: the middle of the repository gives way first, so that
    the host, the image's name, the tag and the digest's start stay readable."""
    cell = row[REFERENCE_COLUMN]
    if len(cell) > room:
        host, _, rest = cell.partition("/")
        parts = rest.split("/")
        tails = ["/".join(parts[i:]) for i in range(1, len(parts))]
        shorter = [*(f"{host}/…/{tail}" for tail in tails), *(f"…/{tail}" for tail in tails)]
        cell = next((c for c in shorter if len(c) <= room), "…" + cell[len(cell) - room + 1 :])
    return (*row[:REFERENCE_COLUMN], cell, *row[REFERENCE_COLUMN + 1 :])


def _cut(text: str, limit: int = MAX_CELL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
