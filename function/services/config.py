"""Settings of the functions, read from the environment (the contract's configuration table)."""

from __future__ import annotations

import os

from function import deadline
from function.auditor import DEFAULT_PARENT_WAIT_SECONDS
from function.reference import InvalidReference, normalize_prefix
from function.sweep.runner import DEFAULT_MAX_SECONDS

FROZEN_PREFIXES_VARIABLE = "AUDITOR_FROZEN_PREFIXES"
DEADLINE_VARIABLE = "AUDITOR_DEADLINE_SECONDS"
PENDING_GRACE_VARIABLE = "AUDITOR_PENDING_GRACE_SECONDS"
SWEEP_MAX_SECONDS_VARIABLE = "AUDITOR_SWEEP_MAX_SECONDS"
PARENT_WAIT_VARIABLE = "AUDITOR_PARENT_WAIT_SECONDS"


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


def frozen_prefixes() -> tuple[str, ...]:
    """``AUDITOR_FROZEN_PREFIXES``: comma-separated registry path prefixes that must never change, each
    spelled as event paths are (``normalize_prefix``)."""
    value = os.environ.get(FROZEN_PREFIXES_VARIABLE, "")
    prefixes = []
    for prefix in (part.strip() for part in value.split(",") if part.strip()):
        try:
            prefixes.append(normalize_prefix(prefix))
        except InvalidReference as error:
            raise RuntimeError(
                f"{FROZEN_PREFIXES_VARIABLE}: {prefix!r} is not a registry path prefix ({error})"
            ) from None
    return tuple(prefixes)


def deadline_seconds() -> float:
    """``AUDITOR_DEADLINE_SECONDS``: the time every decision has to write its verdict line, below the
    function's timeout."""
    return seconds(DEADLINE_VARIABLE, deadline.DEFAULT_SECONDS)


def sweep_max_seconds() -> float:
    """``AUDITOR_SWEEP_MAX_SECONDS``: the sweep's time budget, below its function's timeout."""
    return seconds(SWEEP_MAX_SECONDS_VARIABLE, DEFAULT_MAX_SECONDS)


def parent_wait_seconds() -> float:
    """``AUDITOR_PARENT_WAIT_SECONDS``: how long, from the message's publish time, a child whose list is
    nowhere yet may wait (RETRY ``parent not yet pushed``) before it is decided without that list."""
    return seconds(PARENT_WAIT_VARIABLE, DEFAULT_PARENT_WAIT_SECONDS)
