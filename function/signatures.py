"""Checking the signature a rule asks about (``rules.NeedSignature``): a `.sig` or `.att` manifest, or a
Sigstore-bundle referrer, whose layer blobs are read from the registry that holds it and verified by
``function.signing`` against AUDITOR_SIGNERS and AUDITOR_TRUSTED_ROOT.

Nothing but the registry's own bytes is read: one blob GET per layer of the signature's kind, each capped
and checked against its descriptor's digest and size before it is used. The outcome is remembered by the
caller under the manifest's digest, so a signature costs its blobs once per process.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from function.deadline import Deadline
from function.registry.client import BlobTooLarge, ManifestSource
from function.registry.content import Layer as LayerDescriptor
from function.registry.content import Manifest, is_bundle_media_type
from function.settings import TRUSTED_ROOT_VARIABLE, SettingError, Settings
from function.signing.layers import (
    DSSE_MEDIA_TYPE,
    MAX_BUNDLE_BYTES,
    MAX_ENVELOPE_BYTES,
    MAX_PAYLOAD_BYTES,
    SIMPLE_SIGNING_MEDIA_TYPE,
    Layer,
)
from function.signing.results import Failed, Outcome, SignatureCheck, Verified
from function.signing.signers import DEFAULT_SIGNERS, Signer, parse_signers

if TYPE_CHECKING:
    from function.signing.trust import TrustRoot


class SignedKind(StrEnum):
    """What holds the signature: a cosign `.sig` or `.att` manifest, or a Sigstore-bundle referrer."""

    SIGNATURE = "sig"
    ATTESTATION = "att"
    BUNDLE = "bundle"


_CAPS = {
    SignedKind.SIGNATURE: MAX_PAYLOAD_BYTES,
    SignedKind.ATTESTATION: MAX_ENVELOPE_BYTES,
    SignedKind.BUNDLE: MAX_BUNDLE_BYTES,
}
_MEDIA_TYPES = {SignedKind.SIGNATURE: SIMPLE_SIGNING_MEDIA_TYPE, SignedKind.ATTESTATION: DSSE_MEDIA_TYPE}
_ORDER = list(SignatureCheck)


@dataclass(frozen=True)
class SigningPolicy:
    """Whose signatures count (AUDITOR_SIGNERS) and what they chain to (AUDITOR_TRUSTED_ROOT's bytes; None
    for the public-good root sigstore-python ships).

    Light to hold: the trusted root is read by sigstore-python (with cryptography, about half a second of
    imports) at the first signature checked, not when a function or the CLI starts."""

    signers: tuple[Signer, ...]
    root: bytes | None = None

    @classmethod
    def default(cls) -> SigningPolicy:
        """The promoter's signer under the public-good root."""
        return cls(parse_signers(DEFAULT_SIGNERS))

    @classmethod
    def from_settings(cls, settings: Settings) -> SigningPolicy:
        """AUDITOR_SIGNERS, and AUDITOR_TRUSTED_ROOT's bytes read now (a local path or gs://bucket/object)."""
        uri = settings.trusted_root
        return cls(settings.signers, _read_root(uri) if uri else None)

    @property
    def trust(self) -> TrustRoot:
        """The trusted root, read once per process; SettingError naming AUDITOR_TRUSTED_ROOT if unusable."""
        return _trust(self.root)

    @property
    def fingerprint(self) -> str:
        """A digest of what a verification depends on: outcomes remembered under another policy do not count."""
        hasher = hashlib.sha256()
        for signer in self.signers:
            hasher.update(f"{signer}\n".encode())
        hasher.update(self.root if self.root is not None else _shipped_root())
        return hasher.hexdigest()

    def verify(self, kind: SignedKind, layers: Sequence[Layer], subject: str) -> Outcome:
        """The outcome of ``layers`` (blobs read) as a signature of ``subject``."""
        from function.signing import bundle, cosign

        trust, signers = self.trust, self.signers
        if kind is SignedKind.SIGNATURE:
            return cosign.verify_signature_layers(layers, subject, trust=trust, signers=signers)
        if kind is SignedKind.ATTESTATION:
            return cosign.verify_attestation_layers(layers, subject, trust=trust, signers=signers)
        outcomes = [bundle.verify_bundle(layer.blob, subject, trust=trust, signers=signers) for layer in layers]
        return best(outcomes) or Failed(SignatureCheck.PAYLOAD, "the referrer has no Sigstore bundle layer")


@functools.lru_cache(maxsize=4)
def _trust(root: bytes | None) -> TrustRoot:
    from function.signing.trust import TrustRoot, TrustRootError

    try:
        return TrustRoot.from_json(root) if root is not None else TrustRoot.default()
    except TrustRootError as error:
        raise SettingError(TRUSTED_ROOT_VARIABLE, str(error)) from None


def _shipped_root() -> bytes:
    from function.signing.trust import shipped_root

    return shipped_root()


def _read_root(uri: str) -> bytes:
    try:
        return _read_gcs_object(uri) if uri.startswith("gs://") else Path(uri).read_bytes()
    except (OSError, ValueError) as error:
        raise SettingError(
            TRUSTED_ROOT_VARIABLE,
            f"{TRUSTED_ROOT_VARIABLE}={uri!r} cannot be read ({error}): give a readable trusted_root.json "
            "(local path or gs://bucket/object), or unset it for the public-good root",
        ) from None


def _read_gcs_object(uri: str) -> bytes:
    # Loaded here: only a root kept in Cloud Storage needs the client.
    from google.api_core.exceptions import GoogleAPIError

    from function.storage.gcs import default_client
    from function.storage.uri import parse_gs_uri

    bucket, name = parse_gs_uri(uri)
    try:
        data: bytes = default_client().bucket(bucket).blob(name).download_as_bytes()
    except GoogleAPIError as error:
        raise OSError(str(error)) from error
    return data


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
    cap = _CAPS[kind]
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
