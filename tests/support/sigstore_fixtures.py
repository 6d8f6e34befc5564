"""The real public-good signatures of ../shared/data/sigstore (its README gives their provenance), and a
Sigstore instance of the tests' own with the trusted root that names it, as fixtures a module shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from function.signing.trust import TrustRoot
from tests.support.sigstore_root import SigstoreInstance

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "data" / "sigstore"
PRODUCTION_ROOT = FIXTURES / "trusted_root.production.json"
LEGACY = FIXTURES / "cosign-legacy-github-identity"
DSSE_BUNDLE = FIXTURES / "bundle-v0.3-dsse-slsa"
# The image the legacy `.sig` signs, and its signer as AUDITOR_SIGNERS writes it.
LEGACY_SUBJECT = "sha256:c05263d2ff654c3a94243662440913f045075d59c436e2c69e9145ec2b87a321"
LEGACY_SIGNER = (
    "https://github.com/salrashid123/go-bazel-github-workflow/.github/workflows/release.yaml@refs/tags/v0.0.30"
    "=https://token.actions.githubusercontent.com"
)
# The signer of the v0.3 DSSE bundle.
DSSE_SIGNER = (
    "https://github.com/github/artifact-attestations-workflows/.github/workflows/attest.yml"
    "@09b495c3f12c7881b3cc17209a327792065c1a1d=https://token.actions.githubusercontent.com"
)


@pytest.fixture(scope="module")
def instance() -> SigstoreInstance:
    return SigstoreInstance.create()


@pytest.fixture(scope="module")
def trust(instance: SigstoreInstance) -> TrustRoot:
    return TrustRoot.from_json(instance.trusted_root_json())
