"""The trusted root (AUDITOR_TRUSTED_ROOT): Fulcio CAs, CT log keys and Rekor keys by log ID."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from types import MappingProxyType

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_der_public_key
from cryptography.x509 import Certificate
from sigstore._internal.trust import CTKeyring, KeyringPurpose
from sigstore.errors import Error as SigstoreError
from sigstore.models import TrustedRoot
from sigstore.verify import Verifier
from sigstore_models.trustroot import v1 as trustroot_v1

from function.signing.keys import PublicKey

# The public-good root as sigstore-python ships it for bootstrapping its TUF client. Read straight from the
# package: TrustedRoot.production() / ClientTrustConfig.production(offline=True) go through the TUF updater,
# which creates a cache under $HOME, and $HOME is read-only in Cloud Functions.
_SHIPPED_ROOT = ("_store", "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev", "trusted_root.json")


class TrustRootError(ValueError):
    """AUDITOR_TRUSTED_ROOT cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class RekorKey:
    """A Rekor log's key and when the log signed with it (bounds None where open)."""

    key: PublicKey
    valid_from: datetime | None
    valid_until: datetime | None

    def covers(self, when: datetime) -> bool:
        """Whether the log signed with this key at `when` (bounds inclusive)."""
        after_start = self.valid_from is None or self.valid_from <= when
        before_end = self.valid_until is None or when <= self.valid_until
        return after_start and before_end


@dataclass(frozen=True)
class TrustRoot:
    """What signatures are checked against. Build with `from_json` or `default`."""

    fulcio_certificates: tuple[Certificate, ...]
    rekor_keys: Mapping[bytes, RekorKey]
    # None when the root lists no CT log: a certificate with an embedded SCT then fails check 3.
    ct_keyring: CTKeyring | None
    # For Sigstore bundles, which sigstore-python verifies whole (inclusion proof, checkpoint, SET, TSA).
    bundle_verifier: Verifier

    @classmethod
    def from_json(cls, data: bytes) -> TrustRoot:
        """Read a Sigstore trusted_root.json (media type application/vnd.dev.sigstore.trustedroot+json)."""
        try:
            # TrustedRoot's constructor is the only way in from bytes (from_file wants a path).
            model = trustroot_v1.TrustedRoot.from_json(data)
            root = TrustedRoot(model)
            fulcio = tuple(root.get_fulcio_certs())
            rekor_keys = {tlog.log_id.key_id: key for tlog in model.tlogs if (key := _rekor_key(tlog)) is not None}
            ct_keyring = root.ct_keyring(KeyringPurpose.VERIFY) if model.ctlogs else None
            verifier = Verifier(trusted_root=root)
        except (ValueError, TypeError, SigstoreError) as exc:
            raise TrustRootError(
                f"AUDITOR_TRUSTED_ROOT is not a usable Sigstore trusted_root.json ({exc}); point it at the "
                "trusted root of the Sigstore instance the promoter signs with, or unset it for the public-good one"
            ) from exc
        if not rekor_keys:
            raise TrustRootError(
                "AUDITOR_TRUSTED_ROOT lists no Rekor key this auditor can use (ECDSA, RSA or Ed25519): "
                "no transparency log entry could verify"
            )
        return cls(fulcio, MappingProxyType(rekor_keys), ct_keyring, verifier)

    @classmethod
    def default(cls) -> TrustRoot:
        """The public-good instance's root shipped inside sigstore-python; reads no network and writes nothing."""
        return cls.from_json(shipped_root())


def shipped_root() -> bytes:
    """The public-good trusted_root.json as sigstore-python ships it."""
    return resources.files("sigstore").joinpath(*_SHIPPED_ROOT).read_bytes()


def _rekor_key(tlog: trustroot_v1.TransparencyLogInstance) -> RekorKey | None:
    """The log's key, or None for a key type this auditor cannot check (it may only sign newer entries)."""
    raw = tlog.public_key.raw_bytes
    if not raw:
        return None
    try:
        key = load_der_public_key(raw)
    except (ValueError, UnsupportedAlgorithm):
        return None
    if not isinstance(key, PublicKey):
        return None
    valid_for = tlog.public_key.valid_for
    return RekorKey(key, valid_for.start if valid_for else None, valid_for.end if valid_for else None)
