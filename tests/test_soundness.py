"""Decisions a hostile or untidy registry cannot make wrong (issue 8), on Debian's registry behind the
counting, fault-injecting proxy: artifacts judged by content, children pushed before their list, one
deadline per decision, responses checked before they are read, token realms, bounded memory."""

from __future__ import annotations

import gc
import io
import json
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from function.auditor import Auditor
from function.index.digests import Source
from function.index.publish import rebuild
from function.index.source import FixedIndex
from function.registry.content import DOCKER_MANIFEST_V1_SIGNED, OCI_INDEX
from function.services.audit import AuditService, RetryLater
from function.storage.uri import open_store
from function.verdict import verdict_logger
from tests.support import registry as reg
from tests.support import scenario, signing
from tests.support.auditing import audited, client, cosign_tag, decide, fallback_tag, load, outcome, promotion
from tests.support.clock import FakeClock
from tests.support.proxy import LocalAnswer, RegistryProxy, manifest_answer

pytestmark = pytest.mark.registry
__all__ = ["promotion"]  # the fixture, from tests/support/auditing.py

PAUSE = "us-central1/images/pause"


# --- artifacts by content ---------------------------------------------------------------------------


def test_a_runnable_image_with_a_subject_is_never_a_referrer(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    auditor = audited(tmp_path, promotion)
    host, path = registry_proxy.host, f"{registry_proxy.host}/{PAUSE}"
    pause = promotion.artifacts["pause"][0].digest
    # The hijack: a runnable image naming the promoted index as its subject, pushed over the promoted tag.
    hijack = reg.push_image(host, PAUSE, tag="3.10", subject=pause, seed="hijack")
    assert outcome(decide(auditor, path, hijack, "3.10"))[:2] == ("REJECTED", "unknown_digest")
    assert outcome(decide(auditor, path, hijack)) == ("REJECTED", "bad_artifact", 1)
    # Remembered: the same manifest in another region costs nothing more.
    other = f"{host}/europe-west1/images/pause"
    assert outcome(decide(auditor, other, hijack)) == ("REJECTED", "bad_artifact", 0)


def test_a_genuine_artifact_is_a_referrer_only_untagged(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    auditor = audited(tmp_path, promotion)
    host, path = registry_proxy.host, f"{registry_proxy.host}/{PAUSE}"
    pause = promotion.artifacts["pause"][0].digest
    provenance = reg.push_referrer(host, PAUSE, pause, artifact_type="application/vnd.in-toto+json")
    assert outcome(decide(auditor, path, provenance)) == ("VERIFIED", "referrer", 1)
    assert outcome(decide(auditor, path, provenance)) == ("VERIFIED", "referrer", 0)
    # The same artifact under an ordinary tag is decided by the tag rules.
    assert outcome(decide(auditor, path, provenance, "latest")) == ("REJECTED", "unknown_digest", 0)


def test_the_referrers_fallback_tag(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    auditor = audited(tmp_path, promotion)
    host, path = registry_proxy.host, f"{registry_proxy.host}/{PAUSE}"
    pause = promotion.artifacts["pause"][0].digest
    sbom = next(a.digest for a in promotion.artifacts["pause"] if a.kind == "referrer")
    genuine = reg.push_referrers_index(host, PAUSE, pause, [sbom])
    # The index and its one entry, each fetched and judged (issue 16).
    assert outcome(decide(auditor, path, genuine, fallback_tag(pause))) == ("VERIFIED", "referrer", 2)

    runnable = reg.push_image(host, PAUSE, subject=pause, seed="runnable-referrer")
    mixed = reg.push_referrers_index(host, PAUSE, pause, [sbom, runnable])
    assert outcome(decide(auditor, path, mixed, fallback_tag(pause))) == ("REJECTED", "bad_artifact", 1)

    stray = reg.push_image(host, PAUSE, seed="stray-subject")
    orphan = reg.push_referrers_index(host, PAUSE, stray, [reg.push_referrer(host, PAUSE, stray)])
    assert outcome(decide(auditor, path, orphan, fallback_tag(stray))) == ("REJECTED", "orphan_artifact", 0)


def test_cosign_tags_are_verified_only_for_what_cosign_writes(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    auditor = audited(tmp_path, promotion)
    host, path = registry_proxy.host, f"{registry_proxy.host}/{PAUSE}"
    pause = promotion.artifacts["pause"][0].digest
    signature = next(a.digest for a in promotion.artifacts["pause"] if a.kind == "signature")
    attestation = next(a.digest for a in promotion.artifacts["pause"] if a.kind == "attestation")
    # One manifest GET and one GET of its one layer blob (CONTRACT.md: signatures cost their layers, once).
    assert outcome(decide(auditor, path, signature, cosign_tag(pause, "sig"))) == ("VERIFIED", "signature", 2)
    other = f"{host}/asia-east1/images/pause"
    assert outcome(decide(auditor, other, signature, cosign_tag(pause, "sig"))) == ("VERIFIED", "signature", 0)
    assert outcome(decide(auditor, path, attestation, cosign_tag(pause, "att"))) == ("VERIFIED", "attestation", 2)
    # A DSSE envelope is no signature, and a signature no SBOM.
    assert outcome(decide(auditor, path, attestation, cosign_tag(pause, "sig"))) == ("REJECTED", "bad_artifact", 0)
    assert outcome(decide(auditor, path, signature, cosign_tag(pause, "sbom"))) == ("REJECTED", "bad_artifact", 0)
    # A runnable image under the signature tag: `:sha256-<hex>.sig` would serve an image.
    impostor = reg.push_image(host, PAUSE, tag=cosign_tag(pause, "sig"), seed="not-a-signature")
    assert outcome(decide(auditor, path, impostor, cosign_tag(pause, "sig"))) == ("REJECTED", "bad_artifact", 1)
    # The promoted index itself under its signature tag is no signature either.
    assert outcome(decide(auditor, path, pause, cosign_tag(pause, "sig"))) == ("REJECTED", "bad_artifact", 1)
    # A tag-only event: one GET names the digest and the content at once.
    registry_proxy.clear()
    assert outcome(decide(auditor, path, tag=cosign_tag(pause, "att"))) == ("VERIFIED", "attestation", 1)
    assert [r.method for r in registry_proxy.registry_requests()] == ["GET"]
    assert outcome(decide(auditor, path, tag=cosign_tag(pause, "sig"))) == ("REJECTED", "bad_artifact", 1)


def test_a_registry_fault_while_reading_an_artifact_is_retry(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    auditor = audited(tmp_path, promotion)
    path = f"{registry_proxy.host}/{PAUSE}"
    pause = promotion.artifacts["pause"][0].digest
    signature = next(a.digest for a in promotion.artifacts["pause"] if a.kind == "signature")
    registry_proxy.tamper(lambda body: body.replace(b"simplesigning", b"simplesignin9"))
    tampered = decide(auditor, path, signature, cosign_tag(pause, "sig"))
    assert (tampered.verdict, tampered.reason) == ("RETRY", "registry unavailable")
    registry_proxy.heal()
    assert outcome(decide(auditor, path, signature, cosign_tag(pause, "sig"))) == ("VERIFIED", "signature", 2)


# --- children before their list --------------------------------------------------------------------


def late_list(host: str, repo: str, seed: str) -> tuple[str, list[str]]:
    """Children and list of a new image, pushed where no auditor looks, to learn the list's digest."""
    children = [reg.push_image(host, repo, platform=p, oci=True, seed=f"{seed}-{p[1]}") for p in scenario.PLATFORMS]
    return reg.push_index(host, repo, children), children


def offline_auditor(tmp_path: Path, promotion: scenario.Promotion, image: str, digest: str) -> Auditor:
    root = tmp_path / "manifests"
    scenario.write_tree(root, promotion.host, {**promotion.commits["commit-1"], image: {digest: ["1.0"]}})
    rebuild(root, open_store(str(tmp_path / "index.json")), source=Source(commit="c"), registry_factory=None)
    index = load(tmp_path / "index.json")
    return Auditor(FixedIndex(index), client(index.registry_hosts()), signing=signing.policy())


def test_a_child_pushed_before_its_list_waits_for_it(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    host = registry_proxy.host
    listed, children = late_list(host, "scratch/late", "late")
    repo = "us-central1/images/late"
    for platform, child in zip(scenario.PLATFORMS, children, strict=True):
        assert reg.push_image(host, repo, platform=platform, oci=True, seed=f"late-{platform[1]}") == child
    auditor = offline_auditor(tmp_path, promotion, "late", listed)
    registry_proxy.clear()
    early = decide(auditor, f"{host}/{repo}", children[0])
    assert (early.verdict, early.reason, early.image) == ("RETRY", "parent not yet pushed", "late")
    asked = {r.path for r in registry_proxy.registry_requests()}
    # Every destination and staging were asked for the list, and the child itself was read.
    assert {f"/v2/{d}/late/manifests/{listed}" for d in ("us-central1/images", "europe-west1/images")} <= asked
    assert f"/v2/{scenario.PROJECT}/late/manifests/{listed}" in asked
    assert reg.push_index(host, repo, children, tag="1.0") == listed
    # The redelivery, in the same process: the list is there now.
    late = decide(auditor, f"{host}/{repo}", children[0])
    assert (late.verdict, late.basis, late.parent) == ("VERIFIED", "child", listed)
    assert outcome(decide(auditor, f"{host}/{repo}", children[1])) == ("VERIFIED", "child", 0)


def test_a_list_found_only_in_staging_vouches_for_its_children(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    host = registry_proxy.host
    listed, children = late_list(host, f"{scenario.PROJECT}/staged", "staged")
    repo = "europe-west1/images/staged"
    for platform in scenario.PLATFORMS:
        reg.push_image(host, repo, platform=platform, oci=True, seed=f"staged-{platform[1]}")
    auditor = offline_auditor(tmp_path, promotion, "staged", listed)
    registry_proxy.clear()
    verdict = decide(auditor, f"{host}/{repo}", children[2])
    assert (verdict.verdict, verdict.basis, verdict.parent) == ("VERIFIED", "child", listed)
    found = [r for r in registry_proxy.registry_requests() if r.path.endswith(listed)][-1]
    assert found.path == f"/v2/{scenario.PROJECT}/staged/manifests/{listed}"


# --- one deadline per decision ---------------------------------------------------------------------


def test_a_trickling_registry_is_retry_within_the_deadline(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    publish_index = audited(tmp_path, promotion).source.current()
    stray = reg.push_image(registry_proxy.host, PAUSE, seed="trickled")
    auditor = Auditor(
        FixedIndex(publish_index),
        client(publish_index.registry_hosts()),
        deadline_seconds=1.5,
        signing=signing.policy(),
    )
    registry_proxy.trickle(0.05)
    started = time.monotonic()
    verdict = decide(auditor, f"{registry_proxy.host}/{PAUSE}", stray)
    assert (verdict.verdict, verdict.reason) == ("RETRY", "deadline exceeded")
    assert time.monotonic() - started < 2.5


def test_a_slow_token_service_is_retry_within_the_deadline(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    index = audited(tmp_path, promotion).source.current()
    auditor = Auditor(FixedIndex(index), client(index.registry_hosts()), deadline_seconds=1.5, signing=signing.policy())
    sbom = next(a.digest for a in promotion.artifacts["pause"] if a.kind == "referrer")
    registry_proxy.require_token = True
    registry_proxy.trickle(0.05, path_contains="/token")
    started = time.monotonic()
    verdict = decide(auditor, f"{registry_proxy.host}/{PAUSE}", sbom)
    assert (verdict.verdict, verdict.reason) == ("RETRY", "deadline exceeded")
    assert time.monotonic() - started < 2.5


def test_waiting_for_the_instance_counts_against_the_deadline(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    audited(tmp_path, promotion)  # publishes the index
    stray = reg.push_image(registry_proxy.host, PAUSE, seed="waits")
    stream = io.StringIO()
    service = AuditService(
        open_store(str(tmp_path / "index.json")),
        registry_factory=client,
        logger=verdict_logger(stream),
        deadline_seconds=1.5,
    )
    registry_proxy.trickle(0.05)
    payload = json.dumps({"action": "INSERT", "digest": f"{registry_proxy.host}/{PAUSE}@{stray}"}).encode()

    def deliver() -> None:
        with pytest.raises(RetryLater):
            service.handle({"message": {"data": _b64(payload), "messageId": "m"}})

    started = time.monotonic()
    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert time.monotonic() - started < 2.5
    lines = [line for line in map(json.loads, stream.getvalue().splitlines()) if "verdict" in line]
    assert [line["verdict"] for line in lines] == ["RETRY", "RETRY"]
    assert lines[0]["reason"] == "deadline exceeded"
    # The second waited for the first; if it got the instance a moment before its own deadline, the
    # trickling registry was already left alone (a failed host cools down), which is RETRY as well.
    assert lines[1]["reason"] in ("deadline exceeded", "registry unavailable")


def test_retries_stop_at_the_deadline(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    clock = FakeClock()
    index = audited(tmp_path, promotion).source.current()
    auditor = Auditor(
        FixedIndex(index),
        client(index.registry_hosts(), clock),
        deadline_seconds=3,
        clock=clock,
        signing=signing.policy(),
    )
    stray = reg.push_image(registry_proxy.host, PAUSE, seed="throttled")
    registry_proxy.clear()
    registry_proxy.fail_next(10, 429, retry_after="2")
    verdict = decide(auditor, f"{registry_proxy.host}/{PAUSE}", stray)
    # Two attempts 2 s apart; a third would start past the deadline, so none is sent.
    assert (verdict.verdict, verdict.registry_calls) == ("RETRY", 2)
    assert len(registry_proxy.registry_requests()) == 2


# --- what a registry's answers can and cannot do -------------------------------------------------


def test_a_token_realm_elsewhere_is_never_contacted(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy, registry: reg.RegistryServer
) -> None:
    auditor = audited(tmp_path, promotion)
    sbom = next(a.digest for a in promotion.artifacts["pause"] if a.kind == "referrer")
    with RegistryProxy(registry.url) as elsewhere:
        registry_proxy.require_token = True
        registry_proxy.realm = f"{elsewhere.url}/token"
        verdict = decide(auditor, f"{registry_proxy.host}/{PAUSE}", sbom)
        assert (verdict.verdict, verdict.reason) == ("RETRY", "registry unavailable")
        assert "nothing was sent there" in verdict.message
        assert elsewhere.requests == []
        assert registry_proxy.token_requests() == []
        # The registry's own realm is followed.
        registry_proxy.realm = None
        assert outcome(decide(auditor, f"{registry_proxy.host}/{PAUSE}", sbom))[:2] == ("VERIFIED", "referrer")


def test_the_content_type_does_not_decide_how_bytes_are_read(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    auditor = audited(tmp_path, promotion)
    path = f"{registry_proxy.host}/{PAUSE}"
    pause = promotion.artifacts["pause"][0].digest
    sbom = next(a.digest for a in promotion.artifacts["pause"] if a.kind == "referrer")
    registry_proxy.relabel(DOCKER_MANIFEST_V1_SIGNED)
    assert outcome(decide(auditor, path, sbom)) == ("VERIFIED", "referrer", 1)
    signature = next(a.digest for a in promotion.artifacts["pause"] if a.kind == "signature")
    assert outcome(decide(auditor, path, signature, cosign_tag(pause, "sig"))) == ("VERIFIED", "signature", 2)


# --- bounded memory --------------------------------------------------------------------------------

CRAFTED_LISTS = 150
MAX_RETAINED = 2_000_000  # bytes kept by the auditor after all of them: facts only, a few hundred bytes each


def test_hundreds_of_crafted_lists_leave_only_their_facts_behind(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    auditor = audited(tmp_path, promotion)
    # Entries padded with an annotation: the lists are close to distribution's 4 MiB limit, with a few
    # thousand children each, and cheap enough to parse for the test to stay quick.
    padding = {"org.example.padding": "p" * 1800}
    descriptor = {"mediaType": OCI_INDEX, "digest": "sha256:" + "a" * 64, "size": 1, "annotations": padding}
    entry = json.dumps(descriptor).encode() + b","
    count = (4 * 1024 * 1024 - 300) // len(entry)

    def crafted(seed: int) -> bytes:
        head = b'{"schemaVersion":2,"mediaType":"' + OCI_INDEX.encode() + b'","annotations":{"seed":"%d"},' % seed
        return head + b'"manifests":[' + entry * (count - 1) + entry[:-1] + b"]}"

    digests = {reg.digest_of(crafted(seed)): seed for seed in range(CRAFTED_LISTS)}
    prefix = f"/v2/{PAUSE}/manifests/"

    def answer(method: str, path: str, query: str) -> LocalAnswer | None:
        seed = digests.get(path.removeprefix(prefix)) if path.startswith(prefix) else None
        return manifest_answer(OCI_INDEX, crafted(seed)) if seed is not None and method == "GET" else None

    registry_proxy.serve(answer)
    path = f"{registry_proxy.host}/{PAUSE}"
    listed = list(digests)
    assert outcome(decide(auditor, path, listed[0])) == ("REJECTED", "unknown_digest", 1)
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for i, digest in enumerate(listed[1:], start=1):
            assert outcome(decide(auditor, path, digest)) == ("REJECTED", "unknown_digest", 1)
            if i % 25 == 0:
                gc.collect()
                assert tracemalloc.get_traced_memory()[0] - baseline < MAX_RETAINED, f"after {i} lists"
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert retained < MAX_RETAINED


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()
