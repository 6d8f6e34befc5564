"""Settings of the functions, read from the environment (the contract's configuration table)."""

from __future__ import annotations

import os
from pathlib import Path

from google.api_core.exceptions import GoogleAPIError

from function import deadline
from function.index.store import default_client, parse_gs_uri
from function.reference import InvalidReference, normalize_prefix
from function.signatures import SigningPolicy
from function.signing import DEFAULT_SIGNERS, SignersError, TrustRoot, TrustRootError, parse_signers
from function.sweep.runner import DEFAULT_MAX_SECONDS

FROZEN_PREFIXES_VARIABLE = "AUDITOR_FROZEN_PREFIXES"
DEADLINE_VARIABLE = "AUDITOR_DEADLINE_SECONDS"
PENDING_GRACE_VARIABLE = "AUDITOR_PENDING_GRACE_SECONDS"
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


SIGNERS_VARIABLE = "AUDITOR_SIGNERS"
TRUSTED_ROOT_VARIABLE = "AUDITOR_TRUSTED_ROOT"


def signing_policy() -> SigningPolicy:
    """``AUDITOR_SIGNERS`` and ``AUDITOR_TRUSTED_ROOT`` (a local path or gs://), read once at start: a
    bad value fails here, naming the variable, rather than turning every signature into an alarm."""
    raw_signers = os.environ.get(SIGNERS_VARIABLE)
    root_uri = os.environ.get(TRUSTED_ROOT_VARIABLE, "").strip()
    if raw_signers is None and not root_uri:
        return SigningPolicy.default()
    try:
        signers = parse_signers(DEFAULT_SIGNERS if raw_signers is None else raw_signers)
        trust = TrustRoot.from_json(_read_root(root_uri)) if root_uri else TrustRoot.default()
    except (SignersError, TrustRootError) as error:
        raise RuntimeError(str(error)) from None
    return SigningPolicy(trust, signers)


def _read_root(uri: str) -> bytes:
    try:
        if uri.startswith("gs://"):
            bucket, name = parse_gs_uri(uri)
            data: bytes = default_client().bucket(bucket).blob(name).download_as_bytes()
            return data
        return Path(uri).read_bytes()
    except (OSError, ValueError, GoogleAPIError) as error:
        raise RuntimeError(
            f"{TRUSTED_ROOT_VARIABLE}={uri!r} cannot be read ({error}): give a readable trusted_root.json "
            "(local path or gs://bucket/object), or unset it for the public-good root"
        ) from None
