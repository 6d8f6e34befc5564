"""Settings of the functions, read from the environment (the contract's configuration table)."""

from __future__ import annotations

import os

from function import deadline
from function.reference import InvalidReference, normalize_prefix


def setting(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        raise RuntimeError(f"{name} is not set: see the configuration table in the README")
    return value


def frozen_prefixes() -> tuple[str, ...]:
    """``AUDITOR_FROZEN_PREFIXES``: comma-separated registry path prefixes that must never change."""
    value = os.environ.get("AUDITOR_FROZEN_PREFIXES", "")
    prefixes = tuple(part.strip() for part in value.split(",") if part.strip())
    for prefix in prefixes:
        try:
            normalize_prefix(prefix)
        except InvalidReference as error:
            raise RuntimeError(f"AUDITOR_FROZEN_PREFIXES: {prefix!r} is not a registry path prefix ({error})") from None
    return prefixes


def deadline_seconds() -> float:
    """``AUDITOR_DEADLINE_SECONDS``: the time every decision has to write its verdict line (default 50)."""
    value = os.environ.get("AUDITOR_DEADLINE_SECONDS") or str(deadline.DEFAULT_SECONDS)
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise RuntimeError(
            f"AUDITOR_DEADLINE_SECONDS is {value!r}: set it to a positive number of seconds, below the "
            "function's timeout"
        )
    return seconds
