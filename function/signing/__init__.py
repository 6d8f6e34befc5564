"""Cryptographic verification of cosign / Sigstore signatures of promoted images (CONTRACT.md, Signatures).

Self-contained: the caller fetches manifests and blobs (capped at MAX_PAYLOAD_BYTES / MAX_ENVELOPE_BYTES /
MAX_BUNDLE_BYTES), reads AUDITOR_SIGNERS with parse_signers and AUDITOR_TRUSTED_ROOT with TrustRoot.from_json
(or TrustRoot.default()), and gets a Verified or a Failed naming the first check that failed.
Nothing here reads the network, the environment or the file system (but sigstore-python's shipped root).
"""

from function.signing.bundle import MAX_BUNDLE_BYTES, is_bundle_media_type, verify_bundle
from function.signing.cosign import (
    DSSE_MEDIA_TYPE,
    MAX_ENVELOPE_BYTES,
    MAX_PAYLOAD_BYTES,
    SIMPLE_SIGNING_MEDIA_TYPE,
    Layer,
    verify_attestation_layers,
    verify_signature_layers,
)
from function.signing.results import Failed, Outcome, SignatureCheck, Verified
from function.signing.signers import DEFAULT_SIGNERS, Signer, SignersError, parse_signers
from function.signing.trust import TrustRoot, TrustRootError

__all__ = [
    "DEFAULT_SIGNERS",
    "DSSE_MEDIA_TYPE",
    "MAX_BUNDLE_BYTES",
    "MAX_ENVELOPE_BYTES",
    "MAX_PAYLOAD_BYTES",
    "SIMPLE_SIGNING_MEDIA_TYPE",
    "Failed",
    "Layer",
    "Outcome",
    "SignatureCheck",
    "Signer",
    "SignersError",
    "TrustRoot",
    "TrustRootError",
    "Verified",
    "is_bundle_media_type",
    "parse_signers",
    "verify_attestation_layers",
    "verify_bundle",
    "verify_signature_layers",
]
