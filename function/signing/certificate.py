"""Check 3: the signing certificate chains to a Fulcio CA, was valid when logged and names a trusted signer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from sigstore._internal.sct import verify_sct
from sigstore.errors import Error as SigstoreError

from function.signing.keys import PublicKey
from function.signing.results import CheckFailedError, SignatureCheck
from function.signing.signers import Signer, matching
from function.signing.trust import TrustRoot

# Fulcio's OIDC issuer extension: .1.8 holds a DER UTF8String, the deprecated .1.1 the raw string.
ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
LEGACY_ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_UTF8_STRING_TAG = 0x0C


@dataclass(frozen=True)
class Claims:
    """Who a certificate says signed, before anything vouches for it."""

    identities: tuple[str, ...]
    issuer: str | None

    @property
    def identity(self) -> str | None:
        return self.identities[0] if self.identities else None


def load_certificate(pem: str) -> x509.Certificate:
    """The certificate of a `dev.sigstore.cosign/certificate` annotation (its first PEM block)."""
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise CheckFailedError(
            SignatureCheck.SIGNATURE, f"the certificate is not a PEM X.509 certificate ({exc})"
        ) from exc


def public_key_of(certificate: x509.Certificate) -> PublicKey:
    """The certificate's key, for check 2."""
    try:
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CheckFailedError(SignatureCheck.SIGNATURE, f"the certificate's key cannot be read ({exc})") from exc
    if not isinstance(key, PublicKey):
        raise CheckFailedError(SignatureCheck.SIGNATURE, f"the certificate's key is a {type(key).__name__}")
    return key


def load_chain_hint(pem: str | None) -> list[x509.Certificate]:
    """Intermediates offered by `dev.sigstore.cosign/chain`: only a hint, so an unreadable one is ignored."""
    if not pem:
        return []
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        return []


def claims_of(certificate: x509.Certificate) -> Claims:
    """The email and URI subject alternative names and the Fulcio issuer of `certificate`."""
    try:
        extensions = certificate.extensions
    except ValueError:
        return Claims((), None)
    identities: list[str] = []
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        identities = [
            *san.get_values_for_type(x509.RFC822Name),
            *san.get_values_for_type(x509.UniformResourceIdentifier),
        ]
    except x509.ExtensionNotFound:
        pass
    return Claims(tuple(identities), _issuer(extensions))


def _issuer(extensions: x509.Extensions) -> str | None:
    for oid, decode in ((ISSUER_OID, _der_utf8_string), (LEGACY_ISSUER_OID, _utf8)):
        try:
            value = extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        if isinstance(value, x509.UnrecognizedExtension) and (issuer := decode(value.value)) is not None:
            return issuer
    return None


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def _der_utf8_string(raw: bytes) -> str | None:
    """A DER UTF8String's text. `cryptography` has no public DER reader; the encoding is tag, length, bytes."""
    if len(raw) < 2 or raw[0] != _UTF8_STRING_TAG:
        return None
    length, start = raw[1], 2
    if length & 0x80:
        width = length & 0x7F
        length, start = int.from_bytes(raw[2 : 2 + width], "big"), 2 + width
    if start + length != len(raw):
        return None
    return _utf8(raw[start:])


def check_certificate(
    certificate: x509.Certificate,
    *,
    at: datetime,
    chain_hint: Sequence[x509.Certificate],
    trust: TrustRoot,
    signers: Sequence[Signer],
) -> Signer:
    """The signer of AUDITOR_SIGNERS that `certificate` names, if it passes check 3 at time `at`."""
    claims = claims_of(certificate)
    if not certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc:
        raise CheckFailedError(
            SignatureCheck.CERTIFICATE,
            f"the certificate is valid from {certificate.not_valid_before_utc.isoformat()} to "
            f"{certificate.not_valid_after_utc.isoformat()}, not at the log's integrated time {at.isoformat()}",
        )
    chain = _chain(certificate, at, chain_hint, trust)
    _check_sct(certificate, chain, trust)
    _check_usage(certificate)
    signer = matching(signers, claims.identities, claims.issuer)
    if signer is None:
        raise CheckFailedError(
            SignatureCheck.CERTIFICATE,
            f"the certificate names {', '.join(claims.identities) or 'no email or URI identity'} issued by "
            f"{claims.issuer or 'no Fulcio issuer'}, which is not a signer of AUDITOR_SIGNERS "
            f"({', '.join(map(str, signers))})",
        )
    return signer


def _chain(
    certificate: x509.Certificate, at: datetime, hint: Sequence[x509.Certificate], trust: TrustRoot
) -> list[x509.Certificate]:
    """The issuers from the leaf's up to a Fulcio certificate of the trusted root, checked at `at`."""
    # The Web PKI profile demands the client-auth EKU of a leaf; Fulcio's carry code signing instead, so the
    # EKU rule alone is relaxed (as sigstore-python does) and code signing is required by _check_usage.
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store(list(trust.fulcio_certificates)))
        .time(at)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        return verifier.verify(certificate, list(hint)).chain[1:]
    except (VerificationError, x509.UnsupportedGeneralNameType) as exc:
        raise CheckFailedError(
            SignatureCheck.CERTIFICATE, f"the certificate does not chain to a Fulcio CA of the trusted root ({exc})"
        ) from exc


def _check_sct(certificate: x509.Certificate, chain: list[x509.Certificate], trust: TrustRoot) -> None:
    try:
        certificate.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps)
    except x509.ExtensionNotFound:
        return
    if trust.ct_keyring is None:
        raise CheckFailedError(
            SignatureCheck.CERTIFICATE, "the certificate carries an SCT but the trusted root lists no CT log"
        )
    try:
        # verify_sct is internal to sigstore-python (no public equivalent); it rebuilds the precertificate's
        # signed data, which `cryptography` exposes only piecewise.
        verify_sct(certificate, chain, trust.ct_keyring)
    except (SigstoreError, ValueError) as exc:
        raise CheckFailedError(
            SignatureCheck.CERTIFICATE,
            f"the certificate's SCT does not verify with a CT log key of the trusted root ({exc})",
        ) from exc


def _check_usage(certificate: x509.Certificate) -> None:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise CheckFailedError(SignatureCheck.CERTIFICATE, "the certificate states no (extended) key usage") from exc
    if not usage.digital_signature or ExtendedKeyUsageOID.CODE_SIGNING not in extended:
        raise CheckFailedError(SignatureCheck.CERTIFICATE, "the certificate is not for code signing")
