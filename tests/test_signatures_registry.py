"""Signatures decided on Debian's registry: the real public-good `.sig` fixture, and the tests' own Sigstore
instance for each of the four checks failing alone, attestations and bundle referrers."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from function.auditor import Auditor
from function.events import Event
from function.index import manifests
from function.index.digests import DigestIndex, Source
from function.index.source import FixedIndex
from function.registry.client import RegistryClient
from function.signatures import SigningPolicy
from function.signing.layers import Layer
from function.signing.signers import parse_signers
from function.verdict import Verdict
from tests.support import registry as reg
from tests.support import signing
from tests.support.manifests import digest, write_project
from tests.support.registry import RegistryServer
from tests.support.sigstore_fixtures import FIXTURES, LEGACY, LEGACY_SIGNER, LEGACY_SUBJECT

pytestmark = pytest.mark.registry

PROMOTED = digest("signed-image")


def _index(tmp_path: Path, host: str) -> DigestIndex:
    write_project(
        tmp_path,
        "p",
        destinations=[f"{host}/images"],
        images=[
            {"name": "server", "dmap": {LEGACY_SUBJECT: ["v0.0.30"]}},
            {"name": "pause", "dmap": {PROMOTED: ["1"]}},
        ],
    )
    return DigestIndex.build(manifests.load(tmp_path), source=Source(commit="c1"))


def _auditor(index: DigestIndex, policy: SigningPolicy) -> Auditor:
    return Auditor(FixedIndex(index), RegistryClient(index.registry_hosts(), credentials=None), signing=policy)


def _decide(auditor: Auditor, path: str, digest_: str, tag: str) -> Verdict:
    return auditor.audit(Event("INSERT", path, digest_, tag))


def _sig_tag(subject: str, kind: str = "sig") -> str:
    return subject.replace(":", "-") + f".{kind}"


def test_the_real_public_good_signature_verifies_with_its_signer(tmp_path: Path, registry: RegistryServer) -> None:
    host, repo = registry.host, "images/server"
    document = json.loads((LEGACY / "sig-manifest.crane.json").read_bytes())
    reg.push_blob(host, repo, (LEGACY / "payload.json").read_bytes())
    reg.push_blob(host, repo, (LEGACY / "config.json").read_bytes())
    body = json.dumps(document, separators=(",", ":")).encode()
    signature = reg.push_raw_manifest(host, repo, body, document["mediaType"], _sig_tag(LEGACY_SUBJECT))
    root = (FIXTURES / "trusted_root.production.json").read_bytes()
    auditor = _auditor(_index(tmp_path, host), SigningPolicy(parse_signers(LEGACY_SIGNER), root))
    verdict = _decide(auditor, f"{host}/{repo}", signature, _sig_tag(LEGACY_SUBJECT))
    assert (verdict.verdict, verdict.basis, verdict.registry_calls) == ("VERIFIED", "signature", 2), verdict
    assert verdict.signer is not None and verdict.signer.log_index == 1004096555
    assert verdict.fields()["signer"]["issuer"] == "https://token.actions.githubusercontent.com"
    # Remembered by the manifest's digest: no call the second time.
    assert _decide(auditor, f"{host}/{repo}", signature, _sig_tag(LEGACY_SUBJECT)).registry_calls == 0
    # The same signature under the krel-trust signers is a bad_signature naming the certificate check.
    krel = _auditor(_index(tmp_path, host), SigningPolicy(parse_signers(signing.SIGNERS), root))
    rejected = _decide(krel, f"{host}/{repo}", signature, _sig_tag(LEGACY_SUBJECT))
    assert (rejected.verdict, rejected.reason) == ("REJECTED", "bad_signature")
    assert "certificate check failed" in rejected.message and rejected.signer is not None


def _tampered(layer: Layer, **changes: Any) -> Layer:
    annotations = {**layer.annotations, **changes.pop("annotations", {})}
    return replace(layer, annotations=annotations, **changes)


def _cases(subject: str) -> dict[str, list[Layer]]:
    good = signing.signer().sig_layer(subject)
    other = signing.signer().sig_layer(digest("other"))
    stranger = signing.INSTANCE.signer("someone@example.com")
    wrong_issuer = signing.INSTANCE.signer(issuer="https://issuer.example.com")
    expired = signing.signer().sig_layer(subject, integrated_time=signing.signer().integrated_time() + 3600)
    return {
        "payload": [other],  # names another digest
        "signature": [
            _tampered(
                good,
                annotations={
                    "dev.cosignproject.cosign/signature": other.annotations["dev.cosignproject.cosign/signature"]
                },
            )
        ],
        "certificate": [stranger.sig_layer(subject)],
        "certificate ": [wrong_issuer.sig_layer(subject)],
        "certificate  ": [expired],
        "transparency": [
            _tampered(good, annotations={"dev.sigstore.cosign/bundle": other.annotations["dev.sigstore.cosign/bundle"]})
        ],
    }


def test_each_check_failing_alone_is_a_bad_signature_naming_it(tmp_path: Path, registry: RegistryServer) -> None:
    host, repo = registry.host, "images/pause"
    auditor = _auditor(_index(tmp_path, host), signing.policy())
    for check, layers in _cases(PROMOTED).items():
        pushed = reg.push_signature(host, repo, PROMOTED, "sig", layers=layers)
        verdict = _decide(auditor, f"{host}/{repo}", pushed, _sig_tag(PROMOTED))
        assert (verdict.verdict, verdict.reason) == ("REJECTED", "bad_signature"), (check, verdict)
        assert f"{check.strip()} check failed" in verdict.message, (check, verdict.message)
        assert "signer" in verdict.fields()
    # A second valid layer saves a .sig whose first layer is garbage.
    garbage = _tampered(
        signing.signer().sig_layer(PROMOTED), annotations={"dev.cosignproject.cosign/signature": "AA=="}
    )
    saved = reg.push_signature(host, repo, PROMOTED, "sig", layers=[garbage, signing.signer().sig_layer(PROMOTED)])
    verdict = _decide(auditor, f"{host}/{repo}", saved, _sig_tag(PROMOTED))
    assert (verdict.verdict, verdict.basis, verdict.registry_calls) == ("VERIFIED", "signature", 3), verdict


def test_attestations_and_bundle_referrers(tmp_path: Path, registry: RegistryServer) -> None:
    host, repo = registry.host, "images/pause"
    subject = reg.push_image(host, repo, seed="bundle-subject")
    write_project(tmp_path, "p", destinations=[f"{host}/images"], images=[{"name": "pause", "dmap": {subject: ["1"]}}])
    index = DigestIndex.build(manifests.load(tmp_path), source=Source(commit="c1"))
    auditor = _auditor(index, signing.policy())
    path = f"{host}/{repo}"
    attestation = reg.push_signature(host, repo, subject, "att")
    verdict = _decide(auditor, path, attestation, _sig_tag(subject, "att"))
    assert (verdict.verdict, verdict.basis) == ("VERIFIED", "attestation") and verdict.signer is not None
    forged = reg.push_signature(host, repo, subject, "att", layers=[signing.signer().att_layer(digest("else"))])
    verdict = _decide(auditor, path, forged, _sig_tag(subject, "att"))
    assert (verdict.verdict, verdict.reason) == ("REJECTED", "bad_signature") and "payload check" in verdict.message
    bundle = reg.push_bundle_referrer(host, repo, subject, signing.signer().bundle(subject))
    verdict = auditor.audit(Event("INSERT", path, bundle, None))
    assert (verdict.verdict, verdict.basis) == ("VERIFIED", "referrer"), verdict
    stranger = signing.INSTANCE.signer("someone@example.com")
    bad = reg.push_bundle_referrer(host, repo, subject, stranger.bundle(subject))
    verdict = auditor.audit(Event("INSERT", path, bad, None))
    assert (verdict.verdict, verdict.reason) == ("REJECTED", "bad_signature"), verdict
    assert "certificate check failed" in verdict.message
