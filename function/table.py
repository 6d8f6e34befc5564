"""Verdict lines as a table for people (``--format table``), ending with the count of each verdict."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

COLUMNS = ("verdict", "basis / reason", "path", "digest", "tag", "image")


def render_verdicts(lines: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            str(line.get("verdict") or ""),
            str(line.get("basis") or line.get("reason") or ""),
            str(line.get("path") or ""),
            _short_digest(line.get("digest")),
            str(line.get("tag") or ""),
            str(line.get("image") or ""),
        ]
        for line in lines
    ]
    widths = [max(len(row[i]) for row in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]
    table = [list(COLUMNS), ["-" * w for w in widths], *rows]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
    counts = Counter(str(line.get("verdict")) for line in lines)
    text.append("")
    text.append(", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items())) or "no verdicts")
    return "\n".join(text)


def _short_digest(digest: object) -> str:
    return f"{digest[:19]}…" if isinstance(digest, str) and len(digest) > 19 else str(digest or "")
