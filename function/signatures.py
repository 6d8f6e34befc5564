"""Checking the signature a rule asks about (``rules.NeedSignature``): a `.sig` or `.att` manifest, or a
Sigstore-bundle referrer, whose layer blobs are read from the registry that holds it and verified by
``function.signing`` against AUDITOR_SIGNERS and AUDITOR_TRUSTED_ROOT.

Nothing but the registry's own bytes is read: one blob GET per layer of the signature's kind, each capped
and checked against its descriptor's digest and size before it is used. The outcome is remembered by the
caller under the manifest's digest, so a signature costs its blobs once per process.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives import serialization

from function.deadline import Deadline
from function.registry.client import BlobTooLarge, ManifestSource
from function.registry.content import Layer as LayerDescriptor
from function.registry.content import Manifest, is_bundle_media_type
from function.signing import (
    DEFAULT_SIGNERS,
    DSSE_MEDIA_TYPE,
    MAX_BUNDLE_BYTES,
    MAX_ENVELOPE_BYTES,
    MAX_PAYLOAD_BYTES,
    SIMPLE_SIGNING_MEDIA_TYPE,
    Failed,
    Layer,
    Outcome,
    SignatureCheck,
    Signer,
    TrustRoot,
    Verified,
    parse_signers,
    verify_attestation_layers,
    verify_bundle,
    verify_signature_layers,
)


class SignedKind(StrEnum):
    """What holds the signature: a cosign `.sig` or `.att` manifest, or a Sigstore-bundle referrer."""

    SIGNATURE = "sig"
    ATTESTATION = "att"
    BUNDLE = "bundle"


_CAPS = {SignedKind.SIGNATURE: MAX_PAYLOAD_BYTES, SignedKind.ATTESTATION: MAX_ENVELOPE_BYTES}
_MEDIA_TYPES = {SignedKind.SIGNATURE: SIMPLE_SIGNING_MEDIA_TYPE, SignedKind.ATTESTATION: DSSE_MEDIA_TYPE}
_ORDER = list(SignatureCheck)


@dataclass(frozen=True)
class SigningPolicy:
    """Whose signatures count (AUDITOR_SIGNERS) and what they chain to (AUDITOR_TRUSTED_ROOT)."""

    trust: TrustRoot
    signers: tuple[Signer, ...]

    @classmethod
    def default(cls) -> SigningPolicy:
        """The promoter's signer under the public-good root sigstore-python ships (built once per process:
        reading a trusted root takes tens of milliseconds)."""
        with _DEFAULT_LOCK:
            global _default
            if _default is None:
                _default = cls(TrustRoot.default(), parse_signers(DEFAULT_SIGNERS))
            return _default

    @property
    def fingerprint(self) -> str:
        """A digest of what a verification depends on: outcomes remembered under another policy do not count."""
        hasher = hashlib.sha256()
        for signer in self.signers:
            hasher.update(f"{signer}\n".encode())
        for certificate in self.trust.fulcio_certificates:
            hasher.update(certificate.public_bytes(serialization.Encoding.DER))
        for log_id in sorted(self.trust.rekor_keys):
            hasher.update(log_id)
        return f"sha256:{hasher.hexdigest()}"

    def verify(self, kind: SignedKind, layers: Sequence[Layer], subject: str) -> Outcome:
        """The outcome of ``layers`` (blobs read) as a signature of ``subject``."""
        if kind is SignedKind.SIGNATURE:
            return verify_signature_layers(layers, subject, trust=self.trust, signers=self.signers)
        if kind is SignedKind.ATTESTATION:
            return verify_attestation_layers(layers, subject, trust=self.trust, signers=self.signers)
        outcomes = [verify_bundle(layer.blob, subject, trust=self.trust, signers=self.signers) for layer in layers]
        return best(outcomes) or Failed(SignatureCheck.PAYLOAD, "the referrer has no Sigstore bundle layer")


_DEFAULT_LOCK = threading.Lock()
_default: SigningPolicy | None = None


def check(
    registry: ManifestSource,
    path: str,
    manifest: Manifest,
    kind: SignedKind,
    subject: str,
    policy: SigningPolicy,
    deadline: Deadline,
) -> Outcome:
    """Read the layers of ``kind`` of ``manifest`` (at ``path``) and verify them as a signature of ``subject``.

    A layer whose descriptor declares more than its kind's cap is not read: it fails the payload check.
    Registry faults propagate (the decision stays open)."""
    host, _, repository = path.partition("/")
    cap = _CAPS.get(kind, MAX_BUNDLE_BYTES)
    layers, too_large = [], []
    for descriptor in _signed_layers(manifest, kind):
        try:
            blob = registry.get_blob(
                host, repository, descriptor.digest, size=descriptor.size, max_bytes=cap, deadline=deadline
            )
        except BlobTooLarge as error:
            too_large.append(Failed(SignatureCheck.PAYLOAD, str(error)))
            continue
        layers.append(Layer(descriptor.media_type, descriptor.digest, descriptor.size, descriptor.annotations, blob))
    outcome = policy.verify(kind, layers, subject)
    if isinstance(outcome, Failed) and not layers and too_large:
        return too_large[0]
    return outcome


def best(outcomes: Sequence[Outcome]) -> Outcome | None:
    """The first success, else the failure that got furthest through the checks (the earliest on a tie)."""
    failures = []
    for outcome in outcomes:
        if isinstance(outcome, Verified):
            return outcome
        failures.append(outcome)
    return max(failures, key=lambda failed: _ORDER.index(failed.check), default=None)


def _signed_layers(manifest: Manifest, kind: SignedKind) -> list[LayerDescriptor]:
    if kind is not SignedKind.BUNDLE:
        return [layer for layer in manifest.layers if layer.media_type == _MEDIA_TYPES[kind]]
    bundles = [layer for layer in manifest.layers if is_bundle_media_type(layer.media_type)]
    # Typed by its artifactType alone, the bundle may sit in a layer of a generic media type.
    return bundles or list(manifest.layers)
