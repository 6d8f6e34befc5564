"""function.signing's configuration (AUDITOR_SIGNERS, AUDITOR_TRUSTED_ROOT) and its parsers of untrusted input."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from function.registry.content import is_bundle_media_type
from function.signing.bundle import verify_bundle
from function.signing.cosign import verify_attestation_layers, verify_signature_layers
from function.signing.layers import DSSE_MEDIA_TYPE, SIMPLE_SIGNING_MEDIA_TYPE, Layer
from function.signing.results import CheckFailedError, Failed
from function.signing.signers import DEFAULT_SIGNERS, Signer, SignersError, parse_signers
from function.signing.transparency import parse_log_entry
from function.signing.trust import TrustRoot, TrustRootError
from tests.support.sigstore_fixtures import FIXTURES
from tests.support.sigstore_root import SigstoreInstance

ROOT = Path(__file__).resolve().parent.parent

DIGEST = "sha256:" + "5" * 64
KREL = parse_signers(DEFAULT_SIGNERS)

# --- AUDITOR_SIGNERS ---------------------------------------------------------------------------------------


def test_default_signers() -> None:
    krel = Signer("krel-trust@k8s-releng-prod.iam.gserviceaccount.com", "https://accounts.google.com")
    assert parse_signers(DEFAULT_SIGNERS) == (krel,)


def test_signers_split_at_the_first_equals_before_a_url() -> None:
    value = (
        " a@b.c=https://accounts.google.com , https://x.io/w.yml?ref=main=https://token.actions.githubusercontent.com"
    )
    assert parse_signers(value) == (
        Signer("a@b.c", "https://accounts.google.com"),
        Signer("https://x.io/w.yml?ref=main", "https://token.actions.githubusercontent.com"),
    )


@pytest.mark.parametrize(
    "value",
    ["", "  ", "a@b.c", "a@b.c=", "=https://accounts.google.com", "a@b.c=accounts.google.com", "a@b.c=https://x,"],
)
def test_malformed_signers_name_the_variable(value: str) -> None:
    with pytest.raises(SignersError, match="AUDITOR_SIGNERS"):
        parse_signers(value)


@pytest.mark.parametrize(
    ("media_type", "is_bundle"),
    [
        ("application/vnd.dev.sigstore.bundle.v0.3+json", True),
        ("application/vnd.dev.sigstore.bundle.v0.10+json", True),
        ("application/vnd.dev.sigstore.bundle+json;version=0.3", True),
        ("application/vnd.dev.sigstore.bundle+json;version=1.0", True),
        ("application/vnd.dev.sigstore.bundle+json;version=0.2", False),
        ("application/vnd.dev.sigstore.bundle.v0.1+json", False),
        ("application/vnd.dsse.envelope.v1+json", False),
    ],
)
def test_bundle_media_types(media_type: str, is_bundle: bool) -> None:
    assert is_bundle_media_type(media_type) is is_bundle


# --- AUDITOR_TRUSTED_ROOT ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b"{}", b'{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}', b"\xff"],
)
def test_unusable_trusted_root_names_the_variable(data: bytes) -> None:
    with pytest.raises(TrustRootError, match="AUDITOR_TRUSTED_ROOT"):
        TrustRoot.from_json(data)


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"no Sigstore fixtures at {FIXTURES}")
def test_default_root_is_the_public_good_root() -> None:
    shipped = TrustRoot.default()
    fixture = TrustRoot.from_json((FIXTURES / "trusted_root.production.json").read_bytes())
    assert set(shipped.rekor_keys) == set(fixture.rekor_keys)
    assert shipped.fulcio_certificates == fixture.fulcio_certificates


def test_loading_the_default_root_writes_nothing_under_home(tmp_path: Path) -> None:
    # A fresh interpreter, so that nothing sigstore-python did at import time in this one hides a write.
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
    }
    script = (
        "from function.signing.bundle import verify_bundle\n"
        "from function.signing.signers import DEFAULT_SIGNERS, parse_signers\n"
        "from function.signing.trust import TrustRoot\n"
        "root = TrustRoot.default()\n"
        "assert root.rekor_keys\n"
        "print(verify_bundle(b'{}', 'sha256:' + '0' * 64, trust=root, signers=parse_signers(DEFAULT_SIGNERS)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert list(home.rglob("*")) == []


# --- untrusted input never raises but a Failed -------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@st.composite
def shaped_annotations(draw: st.DrawFn) -> str:
    """Annotations close to the real shape, with any field replaced by anything."""
    payload = {
        "body": draw(st.text(max_size=40) | json_values),
        "integratedTime": draw(st.integers() | json_values),
        "logIndex": draw(st.integers() | json_values),
        "logID": draw(st.text(max_size=70) | json_values),
    }
    return json.dumps({"SignedEntryTimestamp": draw(st.text(max_size=40) | json_values), "Payload": payload})


@settings(max_examples=300)
@given(st.text(max_size=200) | shaped_annotations() | json_values.map(json.dumps))
def test_bundle_annotation_parser_fails_cleanly(annotation: str) -> None:
    with contextlib.suppress(CheckFailedError):
        parse_log_entry(annotation)


def _layer(media_type: str, blob: bytes, annotations: dict[str, str]) -> Layer:
    return Layer(media_type, f"sha256:{hashlib.sha256(blob).hexdigest()}", len(blob), annotations, blob)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    blob=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
    bundle=st.text(max_size=100) | shaped_annotations(),
)
def test_simple_signing_layer_fails_cleanly(
    trust: TrustRoot, instance: SigstoreInstance, blob: bytes, bundle: str
) -> None:
    signer = instance.signer()
    annotations = {**signer.sig_layer(DIGEST).annotations, "dev.sigstore.cosign/bundle": bundle}
    outcome = verify_signature_layers(
        [_layer(SIMPLE_SIGNING_MEDIA_TYPE, blob, annotations)], DIGEST, trust=trust, signers=KREL
    )
    assert isinstance(outcome, Failed)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries(
        {
            "payloadType": st.just("application/vnd.in-toto+json") | json_values,
            "payload": json_values,
            "signatures": json_values,
        }
    ).map(lambda v: json.dumps(v).encode())
)
def test_dsse_envelope_fails_cleanly(trust: TrustRoot, instance: SigstoreInstance, blob: bytes) -> None:
    annotations = dict(instance.signer().att_layer(DIGEST).annotations)
    outcome = verify_attestation_layers([_layer(DSSE_MEDIA_TYPE, blob, annotations)], DIGEST, trust=trust, signers=KREL)
    assert isinstance(outcome, Failed)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries(
        {
            "mediaType": st.just("application/vnd.dev.sigstore.bundle.v0.3+json") | json_values,
            "verificationMaterial": json_values,
            "dsseEnvelope": json_values,
        }
    ).map(lambda v: json.dumps(v).encode())
)
def test_bundle_fails_cleanly(trust: TrustRoot, blob: bytes) -> None:
    assert isinstance(verify_bundle(blob, DIGEST, trust=trust, signers=KREL), Failed)


def test_deeply_nested_json_fails_cleanly(trust: TrustRoot) -> None:
    blob = b"[" * 100_000 + b"]" * 100_000
    layer = _layer(SIMPLE_SIGNING_MEDIA_TYPE, b"[" * 30_000 + b"]" * 30_000, {})
    assert isinstance(verify_signature_layers([layer], DIGEST, trust=trust, signers=KREL), Failed)
    assert isinstance(verify_bundle(blob, DIGEST, trust=trust, signers=KREL), Failed)
