"""Legacy cosign signatures and attestations: the layers of `sha256-<hex>.sig` and `.att` manifests."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from cryptography import x509

from function.signing import keys
from function.signing.certificate import (
    check_certificate,
    claims_of,
    load_certificate,
    load_chain_hint,
    public_key_of,
)
from function.signing.dsse import check_signatures, check_subject, parse_envelope
from function.signing.layers import (
    DSSE_MEDIA_TYPE,
    MAX_ENVELOPE_BYTES,
    MAX_PAYLOAD_BYTES,
    SIMPLE_SIGNING_MEDIA_TYPE,
    Layer,
)
from function.signing.results import CheckFailedError, Failed, Outcome, SignatureCheck, Verified
from function.signing.signers import Signer
from function.signing.transparency import (
    LogEntry,
    check_entry_kind,
    check_hashedrekord,
    check_signed_entry_timestamp,
    parse_log_entry,
)
from function.signing.trust import TrustRoot
from function.signing.untrusted import base64_bytes, json_object, member, subject_hex

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"

COSIGN_SIGNATURE_TYPE = "cosign container image signature"
# Rekor v1 records a DSSE attestation as an intoto (cosign attest) or dsse entry.
ATTESTATION_ENTRY_KINDS = frozenset({"intoto", "dsse"})
_ORDER = list(SignatureCheck)


def verify_signature_layers(
    layers: Sequence[Layer], subject_digest: str, *, trust: TrustRoot, signers: Sequence[Signer]
) -> Outcome:
    """Verified by the first simple-signing layer that signs `subject_digest`; else the best layer's failure."""
    subject_hex(subject_digest)
    return _best(
        [layer for layer in layers if layer.media_type == SIMPLE_SIGNING_MEDIA_TYPE],
        lambda layer: _verify_signature_layer(layer, subject_digest, trust, signers),
        SIMPLE_SIGNING_MEDIA_TYPE,
    )


def verify_attestation_layers(
    layers: Sequence[Layer], subject_digest: str, *, trust: TrustRoot, signers: Sequence[Signer]
) -> Outcome:
    """Verified by the first DSSE layer attesting to `subject_digest`; else the best layer's failure."""
    hex_ = subject_hex(subject_digest)
    return _best(
        [layer for layer in layers if layer.media_type == DSSE_MEDIA_TYPE],
        lambda layer: _verify_attestation_layer(layer, hex_, trust, signers),
        DSSE_MEDIA_TYPE,
    )


def _best(layers: Sequence[Layer], verify: Callable[[Layer], Outcome], media_type: str) -> Outcome:
    """The first success, or the failure that got furthest through the checks (the earliest layer on a tie)."""
    best: Failed | None = None
    for layer in layers:
        outcome = verify(layer)
        if isinstance(outcome, Verified):
            return outcome
        if best is None or _ORDER.index(outcome.check) > _ORDER.index(best.check):
            best = outcome
    return best or Failed(SignatureCheck.PAYLOAD, f"the manifest has no {media_type} layer")


class _Attempt:
    """What a layer's checks learnt so far, so that a failure still names who tried."""

    certificate: x509.Certificate | None = None
    entry: LogEntry | None = None

    def failed(self, exc: CheckFailedError) -> Failed:
        claims = claims_of(self.certificate) if self.certificate is not None else None
        return Failed(
            exc.check,
            exc.detail,
            claims.identity if claims else None,
            claims.issuer if claims else None,
            self.entry.log_index if self.entry else None,
        )


def _verify_signature_layer(layer: Layer, subject_digest: str, trust: TrustRoot, signers: Sequence[Signer]) -> Outcome:
    attempt = _Attempt()
    try:
        _check_blob(layer, MAX_PAYLOAD_BYTES)
        _check_simple_signing(layer.blob, subject_digest)
        signature = base64_bytes(
            _annotation(layer, SIGNATURE_ANNOTATION, SignatureCheck.SIGNATURE),
            SignatureCheck.SIGNATURE,
            "the signature",
        )
        attempt.certificate = certificate = _certificate(layer)
        _check_signature(certificate, signature, layer.blob)
        attempt.entry = entry = parse_log_entry(layer.annotations.get(BUNDLE_ANNOTATION))
        signer = _check_certificate_and_log(layer, certificate, entry, trust, signers)
        check_hashedrekord(entry, payload=layer.blob, signature=signature, certificate=certificate)
    except CheckFailedError as exc:
        return attempt.failed(exc)
    return Verified(signer.identity, signer.issuer, entry.log_index)


def _verify_attestation_layer(layer: Layer, subject_hex: str, trust: TrustRoot, signers: Sequence[Signer]) -> Outcome:
    attempt = _Attempt()
    try:
        _check_blob(layer, MAX_ENVELOPE_BYTES)
        envelope = parse_envelope(layer.blob)
        check_subject(envelope.payload, subject_hex)
        attempt.certificate = certificate = _certificate(layer)
        check_signatures(envelope, public_key_of(certificate))
        attempt.entry = entry = parse_log_entry(layer.annotations.get(BUNDLE_ANNOTATION))
        signer = _check_certificate_and_log(layer, certificate, entry, trust, signers)
        check_entry_kind(entry, ATTESTATION_ENTRY_KINDS)
    except CheckFailedError as exc:
        return attempt.failed(exc)
    return Verified(signer.identity, signer.issuer, entry.log_index)


def _check_certificate_and_log(
    layer: Layer, certificate: x509.Certificate, entry: LogEntry, trust: TrustRoot, signers: Sequence[Signer]
) -> Signer:
    """Checks 3 then 4: the certificate is judged at the integrated time the SET then vouches for."""
    signer = check_certificate(
        certificate,
        at=entry.integrated_at,
        chain_hint=load_chain_hint(layer.annotations.get(CHAIN_ANNOTATION)),
        trust=trust,
        signers=signers,
    )
    check_signed_entry_timestamp(entry, trust)
    return signer


def _check_blob(layer: Layer, cap: int) -> None:
    if len(layer.blob) > cap:
        raise CheckFailedError(SignatureCheck.PAYLOAD, f"the layer is larger than the {cap} bytes a signature may take")
    actual = f"sha256:{hashlib.sha256(layer.blob).hexdigest()}"
    if len(layer.blob) != layer.size or actual != layer.digest:
        raise CheckFailedError(
            SignatureCheck.PAYLOAD,
            f"the layer blob is {actual} ({len(layer.blob)} bytes), "
            f"not the descriptor's {layer.digest} ({layer.size} bytes)",
        )


def _check_simple_signing(payload: bytes, subject_digest: str) -> None:
    check, what = SignatureCheck.PAYLOAD, "the simple-signing payload"
    document = json_object(payload, check, what)
    signed_digest = member(document, "critical.image.docker-manifest-digest", str, check, what)
    if signed_digest != subject_digest:
        raise CheckFailedError(check, f"the payload signs {signed_digest}, not {subject_digest}")
    signature_type = member(document, "critical.type", str, check, what)
    if signature_type != COSIGN_SIGNATURE_TYPE:
        raise CheckFailedError(
            check, f"the payload's critical.type is {signature_type!r}, not {COSIGN_SIGNATURE_TYPE!r}"
        )


def _annotation(layer: Layer, name: str, check: SignatureCheck) -> str:
    value = layer.annotations.get(name)
    if value is None:
        raise CheckFailedError(check, f"the layer has no {name} annotation")
    return value


def _certificate(layer: Layer) -> x509.Certificate:
    return load_certificate(_annotation(layer, CERTIFICATE_ANNOTATION, SignatureCheck.SIGNATURE))


def _check_signature(certificate: x509.Certificate, signature: bytes, payload: bytes) -> None:
    if not keys.is_valid(public_key_of(certificate), signature, payload):
        raise CheckFailedError(SignatureCheck.SIGNATURE, "the signature does not verify over the payload")
