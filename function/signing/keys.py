"""Checking a signature with a public key of any type Sigstore uses, through `cryptography`."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

# cosign and Rekor pair each curve with the hash of its strength (P-256 with SHA-256, ...).
_CURVE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def is_valid(key: object, signature: bytes, data: bytes) -> bool:
    """Whether `signature` is `key`'s over `data`; a key of a type Sigstore does not use never verifies."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            hash_type = _CURVE_HASHES.get(key.curve.name)
            if hash_type is None:
                return False
            key.verify(signature, data, ec.ECDSA(hash_type()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            return False
    except InvalidSignature:
        return False
    return True
