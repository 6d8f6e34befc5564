"""function.signing against real public-good signatures and against a Sigstore instance of the tests' own."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from typing import Any

import pytest

from function.signing.bundle import verify_bundle
from function.signing.cosign import verify_attestation_layers, verify_signature_layers
from function.signing.layers import Layer
from function.signing.results import Failed, SignatureCheck, Verified
from function.signing.signers import DEFAULT_SIGNERS, parse_signers
from function.signing.trust import TrustRoot
from tests.support.sigstore_fixtures import (
    DSSE_BUNDLE,
    DSSE_SIGNER,
    FIXTURES,
    LEGACY,
    LEGACY_SIGNER,
    LEGACY_SUBJECT,
)
from tests.support.sigstore_root import KREL_IDENTITY, KeylessSigner, SigstoreInstance

real = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"no Sigstore fixtures at {FIXTURES}")

LEGACY_DIGEST = LEGACY_SUBJECT
LEGACY_SIGNERS = parse_signers(LEGACY_SIGNER)
DSSE_SIGNERS = parse_signers(DSSE_SIGNER)
KREL = parse_signers(DEFAULT_SIGNERS)
DIGEST = "sha256:" + "5" * 64
OTHER_DIGEST = "sha256:" + "6" * 64
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"


@pytest.fixture(scope="module")
def production() -> TrustRoot:
    return TrustRoot.from_json((FIXTURES / "trusted_root.production.json").read_bytes())


@pytest.fixture(scope="module")
def legacy_layer() -> Layer:
    descriptor = json.loads((LEGACY / "sig-manifest.crane.json").read_text())["layers"][0]
    blob = (LEGACY / "payload.json").read_bytes()
    return Layer(descriptor["mediaType"], descriptor["digest"], descriptor["size"], descriptor["annotations"], blob)


@pytest.fixture(scope="module")
def krel(instance: SigstoreInstance) -> KeylessSigner:
    return instance.signer()


def failed(outcome: Verified | Failed, check: SignatureCheck, fragment: str = "") -> Failed:
    assert isinstance(outcome, Failed), outcome
    assert outcome.check is check, outcome
    assert fragment in outcome.detail, outcome.detail
    return outcome


def annotated(layer: Layer, **changes: str) -> Layer:
    names = {"bundle": BUNDLE_ANNOTATION, "signature": SIGNATURE_ANNOTATION}
    return replace(layer, annotations={**layer.annotations, **{names[k]: v for k, v in changes.items()}})


def edit_bundle(layer: Layer, edit: Any) -> Layer:
    bundle = json.loads(layer.annotations[BUNDLE_ANNOTATION])
    edit(bundle)
    return annotated(layer, bundle=json.dumps(bundle))


def flip_base64(text: str, index: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


# --- the real legacy cosign .sig ---------------------------------------------------------------------------


@real
def test_real_legacy_signature_verifies(production: TrustRoot, legacy_layer: Layer) -> None:
    outcome = verify_signature_layers([legacy_layer], LEGACY_DIGEST, trust=production, signers=LEGACY_SIGNERS)
    assert outcome == Verified(LEGACY_SIGNERS[0].identity, LEGACY_SIGNERS[0].issuer, 1004096555)


@real
def test_real_payload_byte_changed_fails_payload(production: TrustRoot, legacy_layer: Layer) -> None:
    blob = legacy_layer.blob.replace(b"server_image", b"server_imagf")
    outcome = verify_signature_layers(
        [replace(legacy_layer, blob=blob)], LEGACY_DIGEST, trust=production, signers=LEGACY_SIGNERS
    )
    failed(outcome, SignatureCheck.PAYLOAD, "not the descriptor's")


@real
def test_real_payload_of_another_digest_fails_payload(production: TrustRoot, legacy_layer: Layer) -> None:
    outcome = verify_signature_layers([legacy_layer], OTHER_DIGEST, trust=production, signers=LEGACY_SIGNERS)
    assert failed(outcome, SignatureCheck.PAYLOAD, f"not {OTHER_DIGEST}").message.startswith("payload check failed")


@real
def test_real_flipped_signature_byte_fails_signature(production: TrustRoot, legacy_layer: Layer) -> None:
    layer = annotated(legacy_layer, signature=flip_base64(legacy_layer.annotations[SIGNATURE_ANNOTATION], 20))
    outcome = verify_signature_layers([layer], LEGACY_DIGEST, trust=production, signers=LEGACY_SIGNERS)
    failed(outcome, SignatureCheck.SIGNATURE)


@real
@pytest.mark.parametrize(
    "signers",
    [
        DEFAULT_SIGNERS,
        f"{LEGACY_SIGNERS[0].identity}=https://accounts.google.com",
        f"https://github.com/salrashid123/other/.github/workflows/release.yaml@refs/tags/v0.0.30={LEGACY_SIGNERS[0].issuer}",
    ],
    ids=["default", "wrong-issuer", "wrong-identity"],
)
def test_real_signer_not_trusted_fails_certificate(production: TrustRoot, legacy_layer: Layer, signers: str) -> None:
    outcome = verify_signature_layers([legacy_layer], LEGACY_DIGEST, trust=production, signers=parse_signers(signers))
    result = failed(outcome, SignatureCheck.CERTIFICATE, "not a signer of AUDITOR_SIGNERS")
    assert (result.identity, result.issuer, result.log_index) == (
        LEGACY_SIGNERS[0].identity,
        LEGACY_SIGNERS[0].issuer,
        1004096555,
    )


@real
def test_real_integrated_time_outside_validity_fails_certificate(production: TrustRoot, legacy_layer: Layer) -> None:
    # Check 3 reads the (not yet verified) integrated time before check 4 finds the SET no longer covers it.
    layer = edit_bundle(legacy_layer, lambda b: b["Payload"].update(integratedTime=1772216446 + 3600))
    outcome = verify_signature_layers([layer], LEGACY_DIGEST, trust=production, signers=LEGACY_SIGNERS)
    failed(outcome, SignatureCheck.CERTIFICATE, "not at the log's integrated time")


@real
def test_real_modified_set_fails_transparency(production: TrustRoot, legacy_layer: Layer) -> None:
    layer = edit_bundle(
        legacy_layer, lambda b: b.update(SignedEntryTimestamp=flip_base64(b["SignedEntryTimestamp"], 40))
    )
    outcome = verify_signature_layers([layer], LEGACY_DIGEST, trust=production, signers=LEGACY_SIGNERS)
    failed(outcome, SignatureCheck.TRANSPARENCY, "signed entry timestamp does not verify")


@real
def test_real_unknown_log_id_fails_transparency(production: TrustRoot, legacy_layer: Layer) -> None:
    layer = edit_bundle(legacy_layer, lambda b: b["Payload"].update(logID="00" * 32))
    outcome = verify_signature_layers([layer], LEGACY_DIGEST, trust=production, signers=LEGACY_SIGNERS)
    failed(outcome, SignatureCheck.TRANSPARENCY, "names no Rekor log")


@real
def test_real_signature_against_another_root_fails_certificate(trust: TrustRoot, legacy_layer: Layer) -> None:
    outcome = verify_signature_layers([legacy_layer], LEGACY_DIGEST, trust=trust, signers=LEGACY_SIGNERS)
    failed(outcome, SignatureCheck.CERTIFICATE, "does not chain to a Fulcio CA")


# --- the real v0.3 DSSE bundle and the v0.2 message-signature bundle ---------------------------------------


@pytest.fixture(scope="module")
def dsse_bundle() -> tuple[bytes, str]:
    digest = hashlib.sha256((DSSE_BUNDLE / "reusable-workflow-artifact").read_bytes()).hexdigest()
    return (DSSE_BUNDLE / "reusable-workflow-attestation.sigstore.json").read_bytes(), f"sha256:{digest}"


@real
def test_real_dsse_bundle_verifies(production: TrustRoot, dsse_bundle: tuple[bytes, str]) -> None:
    bundle, digest = dsse_bundle
    outcome = verify_bundle(bundle, digest, trust=production, signers=DSSE_SIGNERS)
    assert outcome == Verified(DSSE_SIGNERS[0].identity, DSSE_SIGNERS[0].issuer, 96764485)


@real
def test_real_dsse_bundle_of_another_subject_fails_payload(
    production: TrustRoot, dsse_bundle: tuple[bytes, str]
) -> None:
    outcome = verify_bundle(dsse_bundle[0], OTHER_DIGEST, trust=production, signers=DSSE_SIGNERS)
    failed(outcome, SignatureCheck.PAYLOAD, "subject does not hold")


@real
def test_real_dsse_bundle_of_another_signer_fails_certificate(
    production: TrustRoot, dsse_bundle: tuple[bytes, str]
) -> None:
    outcome = verify_bundle(*dsse_bundle, trust=production, signers=KREL)
    assert failed(outcome, SignatureCheck.CERTIFICATE).identity == DSSE_SIGNERS[0].identity


def _edited_bundle(bundle: bytes, edit: Any) -> bytes:
    document = json.loads(bundle)
    edit(document)
    return json.dumps(document).encode()


@real
def test_real_dsse_bundle_tampered_signature_fails_signature(
    production: TrustRoot, dsse_bundle: tuple[bytes, str]
) -> None:
    def flip(document: dict[str, Any]) -> None:
        signature = document["dsseEnvelope"]["signatures"][0]
        signature["sig"] = flip_base64(signature["sig"], 20)

    outcome = verify_bundle(
        _edited_bundle(dsse_bundle[0], flip), dsse_bundle[1], trust=production, signers=DSSE_SIGNERS
    )
    failed(outcome, SignatureCheck.SIGNATURE)


@real
def test_real_dsse_bundle_tampered_inclusion_proof_fails_transparency(
    production: TrustRoot, dsse_bundle: tuple[bytes, str]
) -> None:
    def flip(document: dict[str, Any]) -> None:
        proof = document["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
        proof["hashes"][3] = flip_base64(proof["hashes"][3], 0)

    outcome = verify_bundle(
        _edited_bundle(dsse_bundle[0], flip), dsse_bundle[1], trust=production, signers=DSSE_SIGNERS
    )
    failed(outcome, SignatureCheck.TRANSPARENCY, "sigstore-python rejects the bundle")


@real
def test_real_message_signature_bundle_fails_payload(production: TrustRoot) -> None:
    bundle = (FIXTURES / "bundle-v0.2-github-whl" / "bundle_v3_github.whl.sigstore").read_bytes()
    outcome = verify_bundle(bundle, DIGEST, trust=production, signers=DSSE_SIGNERS)
    failed(outcome, SignatureCheck.PAYLOAD, "dsseEnvelope")


# --- a .sig of the tests' own Sigstore instance ------------------------------------------------------------


def test_own_signature_verifies(trust: TrustRoot, krel: KeylessSigner) -> None:
    outcome = verify_signature_layers([krel.sig_layer(DIGEST)], DIGEST, trust=trust, signers=KREL)
    assert isinstance(outcome, Verified)
    assert (outcome.identity, outcome.issuer) == (KREL_IDENTITY, "https://accounts.google.com")


def test_own_payload_of_another_digest_fails_payload(trust: TrustRoot, krel: KeylessSigner) -> None:
    layer = krel.sig_layer(DIGEST, payload=krel.simple_signing_payload(OTHER_DIGEST))
    failed(verify_signature_layers([layer], DIGEST, trust=trust, signers=KREL), SignatureCheck.PAYLOAD, OTHER_DIGEST)


def test_own_payload_of_another_type_fails_payload(trust: TrustRoot, krel: KeylessSigner) -> None:
    payload = krel.simple_signing_payload(DIGEST).replace(b"cosign container image signature", b"other")
    layer = krel.sig_layer(DIGEST, payload=payload)
    failed(verify_signature_layers([layer], DIGEST, trust=trust, signers=KREL), SignatureCheck.PAYLOAD, "critical.type")


def test_set_of_another_entry_fails_transparency(trust: TrustRoot, krel: KeylessSigner) -> None:
    layer, other = krel.sig_layer(DIGEST), krel.sig_layer(OTHER_DIGEST)
    other_set = json.loads(other.annotations[BUNDLE_ANNOTATION])["SignedEntryTimestamp"]
    layer = edit_bundle(layer, lambda b: b.update(SignedEntryTimestamp=other_set))
    outcome = verify_signature_layers([layer], DIGEST, trust=trust, signers=KREL)
    failed(outcome, SignatureCheck.TRANSPARENCY, "signed entry timestamp does not verify")


def test_logged_body_of_another_payload_fails_transparency(
    instance: SigstoreInstance, trust: TrustRoot, krel: KeylessSigner
) -> None:
    # A genuine SET, but over a hashedrekord of another payload signed by the same key.
    layer = krel.sig_layer(DIGEST)
    other_payload = krel.simple_signing_payload(OTHER_DIGEST)
    entry = instance.log_entry(krel.hashedrekord(other_payload, krel.sign(other_payload)), krel.integrated_time())
    outcome = verify_signature_layers([annotated(layer, bundle=json.dumps(entry))], DIGEST, trust=trust, signers=KREL)
    failed(outcome, SignatureCheck.TRANSPARENCY, "not of this payload")


def test_logged_body_of_another_signature_fails_transparency(
    instance: SigstoreInstance, trust: TrustRoot, krel: KeylessSigner
) -> None:
    layer = krel.sig_layer(DIGEST)
    entry = instance.log_entry(krel.hashedrekord(layer.blob, krel.sign(layer.blob)), krel.integrated_time())
    outcome = verify_signature_layers([annotated(layer, bundle=json.dumps(entry))], DIGEST, trust=trust, signers=KREL)
    failed(outcome, SignatureCheck.TRANSPARENCY, "another signature")


def test_certificate_of_another_instance_fails_certificate(trust: TrustRoot) -> None:
    stranger = SigstoreInstance.create().signer()
    outcome = verify_signature_layers([stranger.sig_layer(DIGEST)], DIGEST, trust=trust, signers=KREL)
    failed(outcome, SignatureCheck.CERTIFICATE, "does not chain to a Fulcio CA")


def test_certificate_without_sct_verifies(trust: TrustRoot, instance: SigstoreInstance) -> None:
    signer = instance.signer(with_sct=False)
    assert isinstance(verify_signature_layers([signer.sig_layer(DIGEST)], DIGEST, trust=trust, signers=KREL), Verified)


def test_sct_without_ct_log_in_root_fails_certificate(instance: SigstoreInstance, krel: KeylessSigner) -> None:
    trust = TrustRoot.from_json(instance.trusted_root_json(with_ct_log=False))
    outcome = verify_signature_layers([krel.sig_layer(DIGEST)], DIGEST, trust=trust, signers=KREL)
    failed(outcome, SignatureCheck.CERTIFICATE, "lists no CT log")


def test_sct_of_another_ct_log_fails_certificate(instance: SigstoreInstance) -> None:
    impostor = replace(instance, ct_key=SigstoreInstance.create().ct_key)
    layer = impostor.signer().sig_layer(DIGEST)
    trust = TrustRoot.from_json(instance.trusted_root_json())
    failed(verify_signature_layers([layer], DIGEST, trust=trust, signers=KREL), SignatureCheck.CERTIFICATE, "SCT")


def test_uri_identity_and_several_signers(trust: TrustRoot, instance: SigstoreInstance) -> None:
    workflow = "https://github.com/kubernetes/release/.github/workflows/promote.yml@refs/heads/main"
    signer = instance.signer(workflow, "https://token.actions.githubusercontent.com")
    signers = parse_signers(f"{DEFAULT_SIGNERS}, {workflow}=https://token.actions.githubusercontent.com")
    outcome = verify_signature_layers([signer.sig_layer(DIGEST)], DIGEST, trust=trust, signers=signers)
    assert isinstance(outcome, Verified)
    assert (outcome.identity, outcome.issuer) == (workflow, "https://token.actions.githubusercontent.com")


def test_second_valid_layer_saves_garbage_first(trust: TrustRoot, krel: KeylessSigner) -> None:
    garbage = replace(krel.sig_layer(DIGEST), blob=b"garbage")
    assert isinstance(
        verify_signature_layers([garbage, krel.sig_layer(DIGEST)], DIGEST, trust=trust, signers=KREL), Verified
    )


def test_best_layer_names_the_furthest_failure(trust: TrustRoot, krel: KeylessSigner) -> None:
    garbage = replace(krel.sig_layer(DIGEST), blob=b"garbage")
    bad_signature = annotated(krel.sig_layer(DIGEST), signature=base64.b64encode(b"\x30\x00").decode())
    wrong_signer = krel.sig_layer(DIGEST)
    signers = parse_signers("someone@example.com=https://accounts.google.com")
    layers = [garbage, wrong_signer, bad_signature]
    outcome = verify_signature_layers(layers, DIGEST, trust=trust, signers=signers)
    assert failed(outcome, SignatureCheck.CERTIFICATE).identity == KREL_IDENTITY


def test_no_simple_signing_layer_fails_payload(trust: TrustRoot, krel: KeylessSigner) -> None:
    layers = [replace(krel.sig_layer(DIGEST), media_type="application/octet-stream")]
    failed(
        verify_signature_layers(layers, DIGEST, trust=trust, signers=KREL), SignatureCheck.PAYLOAD, "no application/"
    )


def test_missing_bundle_annotation_fails_transparency(trust: TrustRoot, krel: KeylessSigner) -> None:
    layer = krel.sig_layer(DIGEST)
    layer = replace(layer, annotations={k: v for k, v in layer.annotations.items() if k != BUNDLE_ANNOTATION})
    failed(verify_signature_layers([layer], DIGEST, trust=trust, signers=KREL), SignatureCheck.TRANSPARENCY)


def test_subject_digest_must_be_sha256(trust: TrustRoot) -> None:
    with pytest.raises(ValueError, match="sha256"):
        verify_signature_layers([], "sha512:00", trust=trust, signers=KREL)


# --- .att layers and bundles of the tests' own instance ----------------------------------------------------


def test_own_attestation_verifies(trust: TrustRoot, krel: KeylessSigner) -> None:
    outcome = verify_attestation_layers([krel.att_layer(DIGEST)], DIGEST, trust=trust, signers=KREL)
    assert isinstance(outcome, Verified)
    assert outcome.identity == KREL_IDENTITY


def test_attestation_of_another_subject_fails_payload(trust: TrustRoot, krel: KeylessSigner) -> None:
    outcome = verify_attestation_layers([krel.att_layer(OTHER_DIGEST)], DIGEST, trust=trust, signers=KREL)
    failed(outcome, SignatureCheck.PAYLOAD, "subject does not hold")


def test_attestation_signed_by_another_key_fails_signature(
    trust: TrustRoot, krel: KeylessSigner, instance: SigstoreInstance
) -> None:
    layer = krel.att_layer(DIGEST)
    layer = replace(
        layer, annotations={**layer.annotations, "dev.sigstore.cosign/certificate": instance.signer().certificate_pem}
    )
    failed(verify_attestation_layers([layer], DIGEST, trust=trust, signers=KREL), SignatureCheck.SIGNATURE, "PAE")


def test_attestation_of_untrusted_signer_fails_certificate(trust: TrustRoot, instance: SigstoreInstance) -> None:
    layer = instance.signer("mallory@example.com").att_layer(DIGEST)
    outcome = verify_attestation_layers([layer], DIGEST, trust=trust, signers=KREL)
    assert failed(outcome, SignatureCheck.CERTIFICATE).identity == "mallory@example.com"


def test_attestation_logged_as_hashedrekord_fails_transparency(trust: TrustRoot, krel: KeylessSigner) -> None:
    sig_bundle = krel.sig_layer(DIGEST).annotations[BUNDLE_ANNOTATION]
    layer = annotated(krel.att_layer(DIGEST), bundle=sig_bundle)
    failed(
        verify_attestation_layers([layer], DIGEST, trust=trust, signers=KREL),
        SignatureCheck.TRANSPARENCY,
        "hashedrekord",
    )


def test_own_bundle_verifies(trust: TrustRoot, krel: KeylessSigner) -> None:
    outcome = verify_bundle(krel.bundle(DIGEST), DIGEST, trust=trust, signers=KREL)
    assert isinstance(outcome, Verified)
    assert outcome.identity == KREL_IDENTITY


def test_own_bundle_of_untrusted_signer_fails_certificate(trust: TrustRoot, instance: SigstoreInstance) -> None:
    outcome = verify_bundle(instance.signer("mallory@example.com").bundle(DIGEST), DIGEST, trust=trust, signers=KREL)
    failed(outcome, SignatureCheck.CERTIFICATE)


def test_own_bundle_with_bad_checkpoint_fails_transparency(trust: TrustRoot, krel: KeylessSigner) -> None:
    def tamper(document: dict[str, Any]) -> None:
        proof = document["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
        proof["checkpoint"]["envelope"] = SigstoreInstance.create().checkpoint(base64.b64decode(proof["rootHash"]), 1)

    bundle = _edited_bundle(krel.bundle(DIGEST), tamper)
    failed(verify_bundle(bundle, DIGEST, trust=trust, signers=KREL), SignatureCheck.TRANSPARENCY, "checkpoint")
