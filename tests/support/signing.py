"""The tests' own Sigstore instance, shared by the session, and the signing policy that trusts it.

Everything the tests push as a signature is signed by it (memoized per subject, so the same subject gets
the same bytes in every repository, as the promoter's copies do), and every in-process auditor of a
registry test trusts it; processes started by the tests get it through AUDITOR_TRUSTED_ROOT (see conftest).
"""

from __future__ import annotations

import functools

from function.signatures import SigningPolicy
from function.signing.layers import Layer
from function.signing.signers import parse_signers
from tests.support.sigstore_root import GOOGLE_ISSUER, KREL_IDENTITY, KeylessSigner, SigstoreInstance

INSTANCE = SigstoreInstance.create()
SIGNERS = f"{KREL_IDENTITY}={GOOGLE_ISSUER}"


@functools.cache
def signer() -> KeylessSigner:
    return INSTANCE.signer()


@functools.cache
def policy() -> SigningPolicy:
    return SigningPolicy(parse_signers(SIGNERS), INSTANCE.trusted_root_json())


@functools.cache
def layer(kind: str, subject: str) -> Layer:
    """A valid `.sig` or `.att` layer for ``subject``."""
    return signer().sig_layer(subject) if kind == "sig" else signer().att_layer(subject)
