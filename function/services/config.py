"""Settings of the functions, read from the environment (the contract's configuration table)."""

from __future__ import annotations

import os


def setting(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        raise RuntimeError(f"{name} is not set: see the configuration table in the README")
    return value
