"""The rules (function/rules.py) and the auditor's use of a registry (function/auditor.py), on a registry
in a dict (tests/support/fake_registry.py): artifacts judged by their content, read once per digest,
tags resolved, children pushed before their list. What HTTP, faults and deadlines do to the same
decisions is tested on Debian's registry (tests/test_soundness.py, tests/test_auditor_true_miss.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from function import rules
from function.auditor import Auditor
from function.events import parse_payload
from function.index import manifests
from function.index.digests import DigestIndex, Source
from function.index.source import FixedIndex
from function.learned import Learned
from function.signatures import SignedKind
from function.signing.results import Verified
from function.verdict import Verdict
from tests.support import signing
from tests.support.auditing import cosign_tag, decide, fallback_tag, outcome
from tests.support.fake_registry import FakeRegistry
from tests.support.manifests import write_project

HOST = "registry.example"
REGIONS = ("us-central1", "europe-west1")
STAGING = f"{HOST}/k8s-staging-demo"
PAUSE = f"{HOST}/us-central1/images/pause"
OTHER = f"{HOST}/europe-west1/images/pause"


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


def promoted(
    registry: FakeRegistry, tmp_path: Path, *, resolved: bool = True, **extra: dict[str, list[str]]
) -> tuple[Auditor, str]:
    """``pause`` 3.10, a signed multi-arch index, at both regions and staging; an auditor over its index
    (with pause's children resolved, as a sync resolves them, unless not ``resolved``) with ``extra``
    images, and pause's digest."""
    for path in (STAGING + "/pause", PAUSE, OTHER):
        children = [registry.image(path, seed=f"pause-{arch}", oci=True, platform=("linux", arch)) for arch in "ab"]
        pause = registry.index(path, children, tag="3.10")
        registry.signature(path, pause, "sig")
        registry.signature(path, pause, "att")
    root = tmp_path / "m"
    write_project(
        root,
        "p",
        destinations=[f"{HOST}/{region}/images" for region in REGIONS],
        staging=STAGING,
        images=[{"name": "pause", "dmap": {pause: ["3.10"]}}, *({"name": n, "dmap": d} for n, d in extra.items())],
    )
    index = DigestIndex.build(manifests.load(root), source=Source(commit="c1"))
    if resolved:
        index = index.with_resolutions({pause: children})
    registry.requests.clear()
    return Auditor(FixedIndex(index), registry, signing=signing.policy()), pause


# --- the rules alone ---------------------------------------------------------------------------------


def test_the_rules_ask_for_what_they_need_and_decide_once_they_have_it(registry: FakeRegistry, tmp_path: Path) -> None:
    auditor, pause = promoted(registry, tmp_path)
    index = auditor.source.current(None)
    learned = Learned()

    def judge(digest: str | None = None, tag: str | None = None, tag_digest: str | None = None) -> object:
        payload = {"action": "INSERT", **({"digest": f"{PAUSE}@{digest}"} if digest else {})}
        if tag:
            payload["tag"] = f"{PAUSE}:{tag}"
        event = parse_payload(json.dumps(payload))
        return rules.judge(event, index.locate(event.path), learned, tag_digest)

    # A tag alone: its digest first; for a cosign tag, with the content (one GET names both).
    assert judge(tag="3.10") == rules.NeedTag(with_content=False)
    assert judge(tag=cosign_tag(pause, "sig")) == rules.NeedTag(with_content=True)
    listed = judge(tag="3.10", tag_digest=pause)
    assert isinstance(listed, Verdict) and (listed.verdict, listed.basis) == ("VERIFIED", "listed")
    # Under a cosign tag, what the manifest is decides: its facts first.
    signature = registry.signature(PAUSE, pause, "sig")
    assert judge(signature, cosign_tag(pause, "sig")) == rules.NeedFacts(signature)
    learned.remember_facts(signature, registry.get_manifest(HOST, "us-central1/images/pause", signature).facts)
    # A signature of the right shape: whether it verifies next.
    assert judge(signature, cosign_tag(pause, "sig")) == rules.NeedSignature(signature, SignedKind.SIGNATURE, pause)
    learned.remember_signature(signature, pause, Verified("krel", "https://accounts.google.com", 7))
    known = judge(signature, cosign_tag(pause, "sig"))
    assert isinstance(known, Verdict) and (known.verdict, known.basis) == ("VERIFIED", "signature")
    assert known.signer is not None and known.signer.log_index == 7
    # An untagged digest the index does not list is the index's to reject; the auditor then reads it.
    stray = registry.referrer(PAUSE, pause)
    unlisted = judge(stray)
    assert isinstance(unlisted, Verdict) and (unlisted.verdict, unlisted.reason) == ("REJECTED", "unknown_digest")
    facts = registry.get_manifest(HOST, "us-central1/images/pause", stray).facts
    event = parse_payload(json.dumps({"action": "INSERT", "digest": f"{PAUSE}@{stray}"}))
    location = index.locate(event.path)
    assert location is not None and location.image is not None
    referred = rules.referrer(event, location.image, stray, facts, learned)
    assert isinstance(referred, Verdict) and (referred.verdict, referred.basis) == ("VERIFIED", "referrer")
    # Outside every destination: nothing to ask, nothing to learn.
    event = parse_payload(json.dumps({"action": "INSERT", "digest": f"{HOST}/elsewhere/x@{pause}"}))
    ignored = rules.judge(event, index.locate(event.path), learned)
    assert isinstance(ignored, Verdict) and (ignored.verdict, ignored.reason) == ("IGNORED", "not_audited")
    assert registry.calls == 2


# --- artifacts by content ----------------------------------------------------------------------------


def test_a_runnable_image_with_a_subject_is_never_a_referrer(registry: FakeRegistry, tmp_path: Path) -> None:
    auditor, pause = promoted(registry, tmp_path)
    hijack = registry.image(PAUSE, tag="3.10", subject=pause, seed="hijack")
    assert outcome(decide(auditor, PAUSE, hijack, "3.10"))[:2] == ("REJECTED", "unknown_digest")
    assert outcome(decide(auditor, PAUSE, hijack)) == ("REJECTED", "bad_artifact", 1)
    # Remembered: the same manifest in another region costs nothing more.
    assert outcome(decide(auditor, OTHER, hijack)) == ("REJECTED", "bad_artifact", 0)


def test_a_genuine_artifact_is_a_referrer_only_untagged(registry: FakeRegistry, tmp_path: Path) -> None:
    auditor, pause = promoted(registry, tmp_path)
    provenance = registry.referrer(PAUSE, pause, artifact_type="application/vnd.in-toto+json")
    assert outcome(decide(auditor, PAUSE, provenance)) == ("VERIFIED", "referrer", 1)
    assert outcome(decide(auditor, PAUSE, provenance)) == ("VERIFIED", "referrer", 0)
    assert outcome(decide(auditor, PAUSE, provenance, "latest")) == ("REJECTED", "unknown_digest", 0)
    # The subject must be promoted at this path.
    stray = registry.image(PAUSE, seed="stray")
    orphan = registry.referrer(PAUSE, stray)
    assert outcome(decide(auditor, PAUSE, orphan))[:2] == ("REJECTED", "orphan_artifact")


def test_the_referrers_fallback_tag(registry: FakeRegistry, tmp_path: Path) -> None:
    auditor, pause = promoted(registry, tmp_path)
    sbom = registry.referrer(PAUSE, pause)
    genuine = registry.referrers_index(PAUSE, pause, [sbom])
    # The index and its entry's own manifest: what a runtime would pull is judged, not the descriptor.
    assert outcome(decide(auditor, PAUSE, genuine, fallback_tag(pause))) == ("VERIFIED", "referrer", 2)
    runnable = registry.image(PAUSE, subject=pause, seed="runnable-referrer")
    mixed = registry.referrers_index(PAUSE, pause, [sbom, runnable])
    assert outcome(decide(auditor, PAUSE, mixed, fallback_tag(pause))) == ("REJECTED", "bad_artifact", 1)
    stray = registry.image(PAUSE, seed="stray-subject")
    orphan = registry.referrers_index(PAUSE, stray, [registry.referrer(PAUSE, stray)])
    # Decided from the tag: the subject is not promoted here, no call.
    assert outcome(decide(auditor, PAUSE, orphan, fallback_tag(stray))) == ("REJECTED", "orphan_artifact", 0)


def test_cosign_tags_are_verified_only_for_what_cosign_writes(registry: FakeRegistry, tmp_path: Path) -> None:
    auditor, pause = promoted(registry, tmp_path)
    signature = registry.signature(PAUSE, pause, "sig")
    attestation = registry.signature(PAUSE, pause, "att")
    # Its manifest and its one signed layer's blob, once: the outcome is remembered by the manifest's digest.
    assert outcome(decide(auditor, PAUSE, signature, cosign_tag(pause, "sig"))) == ("VERIFIED", "signature", 2)
    assert outcome(decide(auditor, OTHER, signature, cosign_tag(pause, "sig"))) == ("VERIFIED", "signature", 0)
    assert outcome(decide(auditor, PAUSE, attestation, cosign_tag(pause, "att"))) == ("VERIFIED", "attestation", 2)
    # A DSSE envelope is no signature, and a signature no SBOM.
    assert outcome(decide(auditor, PAUSE, attestation, cosign_tag(pause, "sig"))) == ("REJECTED", "bad_artifact", 0)
    assert outcome(decide(auditor, PAUSE, signature, cosign_tag(pause, "sbom"))) == ("REJECTED", "bad_artifact", 0)
    impostor = registry.image(PAUSE, tag=cosign_tag(pause, "sig"), seed="not-a-signature")
    assert outcome(decide(auditor, PAUSE, impostor, cosign_tag(pause, "sig"))) == ("REJECTED", "bad_artifact", 1)
    assert outcome(decide(auditor, PAUSE, pause, cosign_tag(pause, "sig"))) == ("REJECTED", "bad_artifact", 1)
    # A tag-only event: one GET names the digest and the content at once.
    registry.requests.clear()
    registry.signature(PAUSE, pause, "att")
    assert outcome(decide(auditor, PAUSE, tag=cosign_tag(pause, "att"))) == ("VERIFIED", "attestation", 1)
    assert [method for method, _, _ in registry.requests] == ["GET"]


def test_a_tag_alone_costs_one_head_and_an_absent_manifest_is_no_referrer(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    auditor, _ = promoted(registry, tmp_path)
    assert outcome(decide(auditor, PAUSE, tag="3.10")) == ("VERIFIED", "listed", 1)
    assert registry.requests == [("HEAD", PAUSE, "3.10")]
    # An unlisted digest the registry does not hold cannot be a referrer: the index's verdict stands.
    registry.requests.clear()
    absent = "sha256:" + "0" * 64
    assert outcome(decide(auditor, PAUSE, absent)) == ("REJECTED", "unknown_digest", 1)
    assert registry.requests == [("GET", PAUSE, absent)]


# --- children before their list ---------------------------------------------------------------------


def late_list(registry: FakeRegistry, path: str, seed: str) -> tuple[str, list[str]]:
    children = [registry.image(path, seed=f"{seed}-{a}", oci=True, platform=("linux", a)) for a in "abc"]
    return registry.index(path, children), children


def test_a_child_pushed_before_its_list_waits_for_it(registry: FakeRegistry, tmp_path: Path) -> None:
    listed, children = late_list(registry, f"{HOST}/scratch/late", "late")
    auditor, _ = promoted(registry, tmp_path, resolved=False, late={listed: ["1.0"]})
    late = f"{HOST}/us-central1/images/late"
    for n, arch in enumerate("abc"):
        assert registry.image(late, seed=f"late-{arch}", oci=True, platform=("linux", arch)) == children[n]
    early = decide(auditor, late, children[0])
    assert (early.verdict, early.reason, early.image) == ("RETRY", "parent not yet pushed", "late")
    asked = {(path, reference) for _, path, reference in registry.requests}
    # Every destination and staging were asked for the list.
    assert {(f"{HOST}/{region}/images/late", listed) for region in REGIONS} <= asked
    assert (f"{STAGING}/late", listed) in asked
    assert registry.index(late, children, tag="1.0") == listed
    verdict = decide(auditor, late, children[0])
    assert (verdict.verdict, verdict.basis, verdict.parent) == ("VERIFIED", "child", listed)
    assert outcome(decide(auditor, late, children[1])) == ("VERIFIED", "child", 0)


def test_a_list_found_only_in_staging_vouches_for_its_children(registry: FakeRegistry, tmp_path: Path) -> None:
    listed, children = late_list(registry, f"{STAGING}/staged", "staged")
    auditor, _ = promoted(registry, tmp_path, resolved=False, staged={listed: ["1.0"]})
    staged = f"{HOST}/europe-west1/images/staged"
    for arch in "abc":
        registry.image(staged, seed=f"staged-{arch}", oci=True, platform=("linux", arch))
    verdict = decide(auditor, staged, children[2])
    assert (verdict.verdict, verdict.basis, verdict.parent) == ("VERIFIED", "child", listed)
    found = [(path, reference) for _, path, reference in registry.requests if reference == listed][-1]
    assert found == (f"{STAGING}/staged", listed)
