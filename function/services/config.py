"""Settings of the functions, read from the environment (the contract's configuration table)."""

from __future__ import annotations

import os

FROZEN_PREFIXES_VARIABLE = "AUDITOR_FROZEN_PREFIXES"
SWEEP_MAX_SECONDS_VARIABLE = "AUDITOR_SWEEP_MAX_SECONDS"


def setting(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        raise RuntimeError(f"{name} is not set: see the configuration table in the README")
    return value


def seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment, or ``default`` when it is unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise RuntimeError(f"{name}={raw!r} is not a positive number of seconds: see the README's configuration table")
    return value


def setting_list(name: str) -> tuple[str, ...]:
    """A comma-separated setting as its non-empty items (empty when unset)."""
    return tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())
