"""DSSE envelopes of in-toto statements, as cosign attestations and Sigstore bundles carry them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from function.signing import keys
from function.signing.keys import PublicKey
from function.signing.results import CheckFailedError, SignatureCheck
from function.signing.untrusted import base64_bytes, json_object, member

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_CHECK = SignatureCheck.PAYLOAD


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope: the payload, its type, and the signatures over their PAE."""

    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]

    def pae(self) -> bytes:
        """The DSSE v1 pre-authentication encoding, which is what each signature signs."""
        kind = self.payload_type.encode()
        return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(self.payload), self.payload)


def parse_envelope(blob: bytes) -> Envelope:
    """Read a DSSE envelope whose payload is an in-toto statement."""
    return envelope_of(json_object(blob, _CHECK, "the DSSE envelope"))


def envelope_of(envelope: dict[str, Any]) -> Envelope:
    """The DSSE envelope in parsed JSON (a Sigstore bundle's `dsseEnvelope`)."""
    what = "the DSSE envelope"
    payload_type = member(envelope, "payloadType", str, _CHECK, what)
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise CheckFailedError(_CHECK, f"the DSSE payload is of type {payload_type!r}, not an in-toto statement")
    signatures = member(envelope, "signatures", list, _CHECK, what)
    return Envelope(
        payload_type,
        base64_bytes(member(envelope, "payload", str, _CHECK, what), _CHECK, "the DSSE payload"),
        tuple(
            base64_bytes(member(s, "sig", str, _CHECK, "a DSSE signature"), _CHECK, "a DSSE signature")
            for s in signatures
        ),
    )


def check_subject(statement: bytes, subject_hex: str) -> None:
    """The in-toto statement's `subject` holds sha256:`subject_hex`."""
    what = "the in-toto statement"
    subjects = member(json_object(statement, _CHECK, what), "subject", list, _CHECK, what)
    digests = [
        s.get("digest", {}).get("sha256") if isinstance(s, dict) and isinstance(s.get("digest"), dict) else None
        for s in subjects
    ]
    if subject_hex not in digests:
        raise CheckFailedError(_CHECK, f"the in-toto statement's subject does not hold sha256:{subject_hex}")


def check_signatures(envelope: Envelope, key: PublicKey) -> None:
    """Check 2 for DSSE: one of the envelope's signatures is `key`'s over its PAE."""
    if not any(keys.is_valid(key, signature, envelope.pae()) for signature in envelope.signatures):
        raise CheckFailedError(SignatureCheck.SIGNATURE, "no DSSE signature verifies over the envelope's PAE")
