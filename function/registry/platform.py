"""The platform an index entry names (``os/architecture[/variant]``, and a Windows image's ``os.version``),
as a person reads it.

A pusher's label: ``lookup`` shows it to say which child is which, and nothing decides by it (a child is
promoted for being in a promoted list, whatever platform its descriptor claims).
"""

from __future__ import annotations

import re

# The OCI image spec's values (GOOS, GOARCH, ARM variants, Windows build numbers) are short plain words;
# anything else is left out rather than echoed to an operator's terminal.
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")


def platform_of(descriptor: object) -> str:
    """``os/architecture``, ``os/architecture/variant``, with `` (os.version)`` when the descriptor gives
    one (Windows images differ only by it); "" when it names no platform or one that is not plain words."""
    platform = descriptor.get("platform") if isinstance(descriptor, dict) else None
    if not isinstance(platform, dict):
        return ""
    parts = [platform.get("os"), platform.get("architecture")]
    if platform.get("variant"):
        parts.append(platform["variant"])
    if not all(isinstance(part, str) and _WORD.fullmatch(part) for part in parts):
        return ""
    named = "/".join(str(part) for part in parts)
    version = platform.get("os.version")
    if isinstance(version, str) and _WORD.fullmatch(version):
        named += f" ({version})"
    return named
