"""Sigstore bundle referrers (application/vnd.dev.sigstore.bundle.v0.3+json and later), verified by sigstore-python.

The bundle carries its own inclusion proof, so sigstore-python checks it whole. The checks it makes are also
made here first, each in its turn, so that a failure names the check an operator should look at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from sigstore.errors import Error as SigstoreError
from sigstore.errors import VerificationError
from sigstore.models import Bundle

from function.registry.content import is_bundle_media_type
from function.signing.certificate import check_certificate, claims_of, public_key_of
from function.signing.dsse import IN_TOTO_PAYLOAD_TYPE, check_signatures, check_subject, envelope_of
from function.signing.layers import MAX_BUNDLE_BYTES
from function.signing.results import CheckFailedError, Failed, Outcome, SignatureCheck, Verified
from function.signing.signers import Signer, matching
from function.signing.trust import TrustRoot
from function.signing.untrusted import json_object, member, subject_hex

__all__ = ["MAX_BUNDLE_BYTES", "is_bundle_media_type", "verify_bundle"]


class _SignersPolicy:
    """sigstore-python's VerificationPolicy for "any signer of AUDITOR_SIGNERS" (its Identity takes one)."""

    def __init__(self, signers: Sequence[Signer]) -> None:
        self._signers = signers

    def verify(self, cert: x509.Certificate) -> None:
        claims = claims_of(cert)
        if matching(self._signers, claims.identities, claims.issuer) is None:
            raise VerificationError("the certificate names no signer of AUDITOR_SIGNERS")


@dataclass
class _Attempt:
    """What is known of the bundle so far, so that a failure still names who tried."""

    log_index: int | None = None
    certificate: x509.Certificate | None = None

    def failed(self, exc: CheckFailedError) -> Failed:
        claims = claims_of(self.certificate) if self.certificate is not None else None
        identity, issuer = (claims.identity, claims.issuer) if claims else (None, None)
        return Failed(exc.check, exc.detail, identity, issuer, self.log_index)


def verify_bundle(bundle_bytes: bytes, subject_digest: str, *, trust: TrustRoot, signers: Sequence[Signer]) -> Outcome:
    """Verified when the bundle's DSSE in-toto statement names `subject_digest` and the bundle verifies."""
    hex_ = subject_hex(subject_digest)
    attempt = _Attempt()
    try:
        signer = _verify(bundle_bytes, hex_, trust, signers, attempt)
    except CheckFailedError as exc:
        return attempt.failed(exc)
    # -1 only for a Rekor v2 entry without an index in the bundle, which sigstore-python would have refused.
    return Verified(signer.identity, signer.issuer, attempt.log_index if attempt.log_index is not None else -1)


def _verify(bundle_bytes: bytes, hex_: str, trust: TrustRoot, signers: Sequence[Signer], attempt: _Attempt) -> Signer:
    _check_size(bundle_bytes)
    document = json_object(bundle_bytes, SignatureCheck.PAYLOAD, "the bundle")
    attempt.log_index, integrated_time = _log_entry_fields(document)
    envelope = envelope_of(member(document, "dsseEnvelope", dict, SignatureCheck.PAYLOAD, "the bundle"))
    check_subject(envelope.payload, hex_)
    bundle = _parse(bundle_bytes)
    attempt.certificate = bundle.signing_certificate
    check_signatures(envelope, public_key_of(bundle.signing_certificate))
    signer = _check_certificate(bundle.signing_certificate, integrated_time, trust, signers)
    try:
        payload_type, payload = trust.bundle_verifier.verify_dsse(bundle, _SignersPolicy(signers))
    except SigstoreError as exc:
        raise CheckFailedError(SignatureCheck.TRANSPARENCY, f"sigstore-python rejects the bundle ({exc})") from exc
    # Judge the statement sigstore-python verified, not only the one parsed above (JSON may repeat a key).
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise CheckFailedError(SignatureCheck.PAYLOAD, f"the bundle's payload is of type {payload_type!r}")
    check_subject(payload, hex_)
    return signer


def _check_size(bundle_bytes: bytes) -> None:
    if len(bundle_bytes) > MAX_BUNDLE_BYTES:
        raise CheckFailedError(SignatureCheck.PAYLOAD, f"the bundle is larger than {MAX_BUNDLE_BYTES} bytes")


def _parse(bundle_bytes: bytes) -> Bundle:
    try:
        return Bundle.from_json(bundle_bytes)
    except (SigstoreError, ValueError, TypeError) as exc:
        detail = f"the bundle is not one sigstore-python accepts ({exc})"
        raise CheckFailedError(SignatureCheck.PAYLOAD, detail) from exc


def _log_entry_fields(document: dict[str, Any]) -> tuple[int | None, int | None]:
    """The single log entry's index and integrated time (protobuf JSON writes int64 as strings)."""
    material = document.get("verificationMaterial")
    entries = material.get("tlogEntries") if isinstance(material, dict) else None
    entry = entries[0] if isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], dict) else {}
    return _int(entry.get("logIndex")), _int(entry.get("integratedTime"))


def _int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _check_certificate(
    certificate: x509.Certificate, integrated_time: int | None, trust: TrustRoot, signers: Sequence[Signer]
) -> Signer:
    """Check 3 at the log's integrated time. A Rekor v2 entry has none (its time comes from a timestamp
    authority, which sigstore-python checks): then only the signer is checked here, the rest by sigstore-python."""
    if integrated_time is None:
        claims = claims_of(certificate)
        signer = matching(signers, claims.identities, claims.issuer)
        if signer is None:
            raise CheckFailedError(
                SignatureCheck.CERTIFICATE,
                f"the certificate names {claims.identity} issued by {claims.issuer}, not a signer of AUDITOR_SIGNERS",
            )
        return signer
    try:
        at = datetime.fromtimestamp(integrated_time, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        detail = f"the integrated time {integrated_time} is not a time"
        raise CheckFailedError(SignatureCheck.TRANSPARENCY, detail) from exc
    return check_certificate(certificate, at=at, chain_hint=(), trust=trust, signers=signers)
