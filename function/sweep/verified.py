"""Signatures the sweep verified, remembered between sweeps beside the index (its ``signatures`` records),
so that a second sweep of an unchanged registry reads no signature layer again.

One record per sweep that verified anything new, named by the signing policy's fingerprint: a record
made under other signers or another trusted root is never read. A record holds every verified signature
of the policy (the ones read at start and the new ones) and replaces those it was merged from, so the
folder keeps about one record per policy. The records are only a saving: one that cannot be read or
written costs signature reads, never a verdict.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from function.errors import AuditorError
from function.reference import is_digest
from function.signatures import SigningPolicy
from function.signing.results import Verified
from function.storage.base import Records

log = logging.getLogger(__name__)

FOLDER = "signatures"

# (signature manifest digest, subject digest, outcome)
Remembered = tuple[str, str, Verified]


@dataclass(frozen=True, slots=True)
class Recalled:
    verified: list[Remembered]
    names: list[str]
    """The records they came from, replaced by the next record written."""


def recall(records: Records, policy: SigningPolicy) -> Recalled:
    """Every signature remembered as verified under ``policy``."""
    prefix = _prefix(policy)
    try:
        found = records.read_all()
    except AuditorError as error:
        log.warning("%s: verified signatures not read (%s); this sweep reads every signature layer", records.uri, error)
        return Recalled([], [])
    names = sorted(name for name in found if name.startswith(prefix))
    verified: dict[tuple[str, str], Verified] = {}
    for name in names:
        for digest, subject, outcome in _entries(found[name], f"{records.uri}{name}"):
            verified[digest, subject] = outcome
    return Recalled([(d, s, o) for (d, s), o in verified.items()], names)


def record(records: Records, policy: SigningPolicy, verified: Iterable[Remembered], recalled: Recalled) -> None:
    """Write ``verified`` as one record of ``policy`` if it holds anything ``recalled`` did not, and drop the
    records it replaces."""
    entries = sorted({(d, s): o for d, s, o in verified}.items())
    if {key for key, _ in entries} <= {(d, s) for d, s, _ in recalled.verified}:
        return
    document = {
        "policy": policy.fingerprint,
        "verified": [[d, s, o.identity, o.issuer, o.log_index] for (d, s), o in entries],
    }
    name = f"{_prefix(policy)}{time.time_ns()}-{uuid.uuid4().hex[:8]}.json"
    try:
        records.create(name, json.dumps(document, separators=(",", ":")).encode())
        for old in recalled.names:
            records.delete(old)
    except AuditorError as error:
        log.warning("%s: verified signatures not recorded (%s); the next sweep reads them again", records.uri, error)


def _prefix(policy: SigningPolicy) -> str:
    return f"{policy.fingerprint[:32]}-"


def _entries(data: bytes, where: str) -> list[Remembered]:
    """The entries of one record; a record not of this shape is skipped whole (it is a saving only)."""
    try:
        document = json.loads(data)
        entries = [_entry(raw) for raw in document["verified"]]
    except (ValueError, KeyError, TypeError, RecursionError):
        log.warning("%s: not a record of verified signatures; skipped", where)
        return []
    return entries


def _entry(raw: object) -> Remembered:
    if not isinstance(raw, list) or len(raw) != 5:
        raise TypeError("not an entry")
    digest, subject, identity, issuer, log_index = raw
    strings = isinstance(identity, str) and isinstance(issuer, str)
    if not (is_digest(digest) and is_digest(subject) and strings and type(log_index) is int):
        raise TypeError("not an entry")
    return digest, subject, Verified(identity, issuer, log_index)
