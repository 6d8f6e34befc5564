"""Check 4: a Rekor signed entry timestamp (SET) vouches for the log entry, and the entry for the signature.

sigstore-python 4 accepts a log entry only with its Merkle inclusion proof; legacy cosign signatures carry only
the SET, which cosign accepts offline as sufficient evidence. That rule is implemented here with `cryptography`
and `rfc8785`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785
from cryptography import x509

from function.signing import keys
from function.signing.results import CheckFailedError, SignatureCheck
from function.signing.trust import TrustRoot
from function.signing.untrusted import base64_bytes, json_object, member

_CHECK = SignatureCheck.TRANSPARENCY


@dataclass(frozen=True)
class LogEntry:
    """A Rekor entry as a `dev.sigstore.cosign/bundle` annotation holds it, not yet verified."""

    body: str  # base64 of the entry's JSON, exactly as signed
    integrated_time: int
    log_index: int
    log_id: str  # hex of the sha256 of the log key's DER SubjectPublicKeyInfo
    signed_entry_timestamp: bytes

    @property
    def integrated_at(self) -> datetime:
        return datetime.fromtimestamp(self.integrated_time, UTC)

    def canonical(self) -> bytes:
        """What the SET signs: RFC 8785 JSON of the four payload fields."""
        return rfc8785.dumps(
            {
                "body": self.body,
                "integratedTime": self.integrated_time,
                "logID": self.log_id,
                "logIndex": self.log_index,
            }
        )

    def decoded_body(self) -> dict[str, Any]:
        return json_object(base64_bytes(self.body, _CHECK, "the log entry body"), _CHECK, "the log entry body")


def parse_log_entry(annotation: str | None) -> LogEntry:
    """Read a `dev.sigstore.cosign/bundle` annotation: {"SignedEntryTimestamp", "Payload": {...}}."""
    if annotation is None:
        raise CheckFailedError(_CHECK, "the layer has no dev.sigstore.cosign/bundle annotation (no log entry)")
    what = "the dev.sigstore.cosign/bundle annotation"
    bundle = json_object(annotation, _CHECK, what)
    entry = LogEntry(
        body=member(bundle, "Payload.body", str, _CHECK, what),
        integrated_time=member(bundle, "Payload.integratedTime", int, _CHECK, what),
        log_index=member(bundle, "Payload.logIndex", int, _CHECK, what),
        log_id=member(bundle, "Payload.logID", str, _CHECK, what),
        signed_entry_timestamp=base64_bytes(
            member(bundle, "SignedEntryTimestamp", str, _CHECK, what), _CHECK, "the SignedEntryTimestamp"
        ),
    )
    try:
        entry.integrated_at  # noqa: B018 - a time out of datetime's range is a malformation
    except (OverflowError, OSError, ValueError) as exc:
        raise CheckFailedError(_CHECK, f"the integrated time {entry.integrated_time} is not a time") from exc
    return entry


def check_signed_entry_timestamp(entry: LogEntry, trust: TrustRoot) -> None:
    """The SET verifies with the trusted root's Rekor key that its log ID names, valid at the integrated time."""
    try:
        log_id = bytes.fromhex(entry.log_id)
    except ValueError as exc:
        raise CheckFailedError(_CHECK, f"the log ID {entry.log_id!r} is not hex") from exc
    key = trust.rekor_keys.get(log_id)
    if key is None:
        raise CheckFailedError(_CHECK, f"the log ID {entry.log_id} names no Rekor log of the trusted root")
    if not key.covers(entry.integrated_at):
        raise CheckFailedError(
            _CHECK,
            f"Rekor log {entry.log_id} did not sign with its key at integrated time {entry.integrated_at.isoformat()}",
        )
    if not keys.is_valid(key.key, entry.signed_entry_timestamp, entry.canonical()):
        raise CheckFailedError(
            _CHECK, f"the signed entry timestamp does not verify for entry {entry.log_index} of log {entry.log_id}"
        )


def check_hashedrekord(entry: LogEntry, *, payload: bytes, signature: bytes, certificate: x509.Certificate) -> None:
    """The entry is a hashedrekord of the payload's sha256, this signature and this certificate."""
    body = entry.decoded_body()
    what = "the log entry body"
    kind = (member(body, "kind", str, _CHECK, what), member(body, "apiVersion", str, _CHECK, what))
    if kind != ("hashedrekord", "0.0.1"):
        raise CheckFailedError(_CHECK, f"the log entry is a {kind[0]} {kind[1]}, not a hashedrekord 0.0.1")
    algorithm = member(body, "spec.data.hash.algorithm", str, _CHECK, what)
    digest = member(body, "spec.data.hash.value", str, _CHECK, what)
    if (algorithm, digest) != ("sha256", hashlib.sha256(payload).hexdigest()):
        raise CheckFailedError(_CHECK, f"the log entry is of {algorithm}:{digest}, not of this payload")
    logged_signature = base64_bytes(member(body, "spec.signature.content", str, _CHECK, what), _CHECK, what)
    if logged_signature != signature:
        raise CheckFailedError(_CHECK, "the log entry holds another signature")
    logged_pem = base64_bytes(member(body, "spec.signature.publicKey.content", str, _CHECK, what), _CHECK, what)
    try:
        logged_certificate = x509.load_pem_x509_certificate(logged_pem)
    except ValueError as exc:
        raise CheckFailedError(_CHECK, "the log entry's public key is not a certificate") from exc
    if logged_certificate != certificate:
        raise CheckFailedError(_CHECK, "the log entry holds another certificate")


def check_entry_kind(entry: LogEntry, kinds: Collection[str]) -> None:
    """The entry is of one of `kinds` (in-toto records are not matched field by field)."""
    kind = member(entry.decoded_body(), "kind", str, _CHECK, "the log entry body")
    if kind not in kinds:
        raise CheckFailedError(_CHECK, f"the log entry is a {kind}, not one of {', '.join(sorted(kinds))}")
