"""Multi-arch images, signatures, referrers and true misses, decided against Debian's registry.

The manifests name the counting proxy's host, so every request the auditor or the sync makes is seen
(and counted) by the proxy in front of the real registry.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from function.auditor import Auditor
from function.events import parse_payload
from function.index.digests import Source
from function.index.publish import rebuild
from function.index.source import FixedIndex
from function.storage.uri import open_store
from tests.support import registry as reg
from tests.support import scenario, signing
from tests.support.auditing import audited, client, load, promotion, publish
from tests.support.cli import run_cli
from tests.support.clock import FakeClock
from tests.support.manifests import write_project
from tests.support.proxy import RegistryProxy
from tests.support.sources import Refreshing

pytestmark = pytest.mark.registry
__all__ = ["promotion"]  # the fixture, from tests/support/auditing.py


def test_every_promoted_artifact_is_decided_without_a_registry_call(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    out = tmp_path / "index.json"
    # Four listed digests (pause, logger, logger-amd, etcd): one GET each, from one destination.
    assert publish(tmp_path, promotion, "commit-2", out) == 4
    assert len(registry_proxy.registry_requests()) == 4
    index = load(out)
    assert index.counts()["unresolved"] == 0
    registry_proxy.clear()
    auditor = Auditor(FixedIndex(index), client(index.registry_hosts()), signing=signing.policy())
    seen: dict[str, int] = {}
    for image in ("pause", "logger", "etcd"):
        for payload in promotion.events(image):
            verdict = auditor.audit_payload(json.dumps(payload))
            assert verdict.verdict == "VERIFIED", verdict
            seen[verdict.basis or ""] = seen.get(verdict.basis or "", 0) + 1
            if verdict.basis in ("listed", "child"):
                assert verdict.registry_calls == 0, verdict
    assert seen == {"listed": 9, "child": 21, "signature": 3, "attestation": 3, "referrer": 3}
    # Artifacts are judged by their content: each distinct manifest fetched once (the same bytes are in
    # every region), then remembered; the signature and the attestation also cost their one layer blob.
    assert [r.method for r in registry_proxy.registry_requests()] == ["GET"] * 5


def test_the_seed_case_and_children_that_do_not_belong(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    auditor = audited(tmp_path, promotion)
    path = f"{registry_proxy.host}/us-central1/images"
    logger_list, logger_amd = promotion.artifacts["logger"][0].digest, promotion.artifacts["logger"][1].digest
    registry_proxy.clear()

    # logger-amd is listed under its own name and pushed as a child under logger's name.
    child = auditor.audit_payload(json.dumps({"action": "INSERT", "digest": f"{path}/logger@{logger_amd}"}))
    assert (child.verdict, child.basis, child.parent, child.image, child.registry_calls) == (
        "VERIFIED",
        "child",
        logger_list,
        "logger",
        0,
    )
    # A child pushed with a tag its parent does not carry.
    tagged = auditor.audit_payload(
        json.dumps({"action": "INSERT", "digest": f"{path}/logger@{logger_amd}", "tag": f"{path}/logger:v2"})
    )
    assert (tagged.verdict, tagged.reason, tagged.registry_calls) == ("REJECTED", "tag_mismatch", 0)

    # A list nobody promoted, and its child: each a true miss costing exactly its own manifest.
    repo = "us-central1/images/pause"
    stray_child = reg.push_image(registry_proxy.host, repo, platform=("linux", "s390x"), seed="stray")
    stray_list = reg.push_index(registry_proxy.host, repo, [stray_child], tag="stray")
    registry_proxy.clear()
    for digest in (stray_child, stray_list):
        verdict = auditor.audit_payload(json.dumps({"action": "INSERT", "digest": f"{path}/pause@{digest}"}))
        assert (verdict.verdict, verdict.reason, verdict.registry_calls) == ("REJECTED", "unknown_digest", 1)
    assert len(registry_proxy.registry_requests()) == 2

    # A referrer whose subject is not promoted here, and a signature of it.
    orphan = reg.push_referrer(registry_proxy.host, repo, stray_list)
    verdict = auditor.audit_payload(json.dumps({"action": "INSERT", "digest": f"{path}/pause@{orphan}"}))
    assert (verdict.verdict, verdict.reason, verdict.registry_calls) == ("REJECTED", "orphan_artifact", 1)
    sig_tag = stray_list.replace(":", "-") + ".sig"
    signature = reg.push_signature(registry_proxy.host, repo, stray_list)
    verdict = auditor.audit_payload(
        json.dumps({"action": "INSERT", "digest": f"{path}/pause@{signature}", "tag": f"{path}/pause:{sig_tag}"})
    )
    assert (verdict.verdict, verdict.reason, verdict.registry_calls) == ("REJECTED", "orphan_artifact", 0)


def test_incremental_rebuild_fetches_only_new_digests(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    out = tmp_path / "index.json"
    assert publish(tmp_path, promotion, "commit-1", out) == 3
    registry_proxy.clear()
    assert publish(tmp_path, promotion, "commit-2", out) == 1
    assert len(registry_proxy.registry_requests()) == 1
    assert load(out).counts()["unresolved"] == 0


def test_offline_index_resolves_parents_in_the_events_repository_once(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    out = tmp_path / "index.json"
    publish(tmp_path, promotion, "commit-1", out, offline=True)
    assert registry_proxy.requests == []
    index = load(out)
    auditor = Auditor(FixedIndex(index), client(index.registry_hosts()), signing=signing.policy())
    children = [a for a in promotion.artifacts["pause"] if a.kind == "child"]
    path = f"{registry_proxy.host}/europe-west1/images/pause"
    first = auditor.audit_payload(json.dumps({"action": "INSERT", "digest": f"{path}@{children[0].digest}"}))
    assert (first.verdict, first.basis, first.registry_calls) == ("VERIFIED", "child", 1)
    assert {r.path for r in registry_proxy.registry_requests()} == {
        f"/v2/europe-west1/images/pause/manifests/{promotion.artifacts['pause'][0].digest}"
    }
    second = auditor.audit_payload(json.dumps({"action": "INSERT", "digest": f"{path}@{children[1].digest}"}))
    assert (second.verdict, second.basis, second.registry_calls) == ("VERIFIED", "child", 0)


def test_tag_only_insert_costs_one_head(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    auditor = audited(tmp_path, promotion)
    registry_proxy.clear()
    path = f"{registry_proxy.host}/asia-east1/images/pause"
    verdict = auditor.audit_payload(json.dumps({"action": "INSERT", "tag": f"{path}:3.10"}))
    assert (verdict.verdict, verdict.basis, verdict.registry_calls, verdict.digest) == ("VERIFIED", "listed", 1, None)
    assert [r.method for r in registry_proxy.registry_requests()] == ["HEAD"]
    # A tag moved onto an unpromoted image: still one HEAD, even though a fresher index is consulted.
    stray = reg.push_image(registry_proxy.host, "asia-east1/images/pause", tag="moved", seed="moved-tag")
    index = auditor.source.current()
    refreshed = Auditor(
        Refreshing(index, lambda: load(tmp_path / "index.json")),
        client(index.registry_hosts()),
        signing=signing.policy(),
    )
    registry_proxy.clear()
    moved = refreshed.audit_payload(json.dumps({"action": "INSERT", "tag": f"{path}:moved"}))
    assert (moved.verdict, moved.reason, moved.registry_calls) == ("REJECTED", "unknown_digest", 1)
    assert stray in moved.message


def test_faults_leave_the_decision_open(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    clock = FakeClock()
    auditor = audited(tmp_path, promotion, clock=clock)
    path = f"{registry_proxy.host}/us-central1/images/pause"
    sbom = next(a for a in promotion.artifacts["pause"] if a.kind == "referrer").digest
    payload = json.dumps({"action": "INSERT", "digest": f"{path}@{sbom}"})
    registry_proxy.clear()
    registry_proxy.fail_always(503)
    down = auditor.audit_payload(payload)
    assert (down.verdict, down.reason, down.registry_calls) == ("RETRY", "registry unavailable", 4)
    assert len(registry_proxy.registry_requests()) == 4
    # The redelivery moments later is not sent at all: a failing registry is left alone for a while.
    again = auditor.audit_payload(payload)
    assert (again.verdict, again.registry_calls) == ("RETRY", 0)
    assert len(registry_proxy.registry_requests()) == 4
    registry_proxy.heal()
    clock.now += 11
    registry_proxy.fail_next(1, 429, retry_after="2")
    up = auditor.audit_payload(payload)
    assert (up.verdict, up.basis, up.registry_calls) == ("VERIFIED", "referrer", 2)
    # Promoted artifacts need no registry, so an outage cannot touch them.
    registry_proxy.fail_always(503)
    listed = promotion.events("pause", "us-central1")[0]
    assert auditor.audit_payload(json.dumps(listed)).registry_calls == 0


def test_hosts_outside_the_manifests_are_never_contacted(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy, registry: reg.RegistryServer
) -> None:
    auditor = audited(tmp_path, promotion)
    registry_proxy.clear()
    # The real registry's own address holds the same repositories, but no manifest names it.
    payload = {"action": "INSERT", "digest": f"{registry.host}/us-central1/images/pause@{reg.digest_of(b'x')}"}
    verdict = auditor.audit_payload(json.dumps(payload))
    assert (verdict.verdict, verdict.reason, verdict.registry_calls) == ("IGNORED", "not_audited", 0)
    assert registry_proxy.requests == []
    assert parse_payload(json.dumps(payload)).path.startswith(registry.host)


def test_cli_exit_codes(tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy) -> None:
    root = promotion.write_manifests("commit-1", tmp_path / "m")
    out = tmp_path / "index.json"
    build = run_cli("build-index", "--manifests", str(root), "--out", str(out))
    assert build.returncode == 0, build.stderr
    assert "3 registry calls" in build.stdout

    def audit(payloads: list[dict[str, str]]) -> tuple[int, list[dict[str, object]]]:
        run = run_cli("audit", "--index", str(out), stdin="\n".join(json.dumps(p) for p in payloads) + "\n")
        lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
        return run.returncode, [line for line in lines if "verdict" in line]

    good = promotion.events("pause", "us-central1")[:4]
    code, verdicts = audit(good)
    assert (code, [v["verdict"] for v in verdicts]) == (0, ["VERIFIED"] * 4)
    code, verdicts = audit([*good, {"action": "DELETE", "digest": good[0]["digest"]}])
    assert (code, verdicts[-1]["reason"]) == (1, "deletion")
    sbom = {"action": "INSERT", "digest": promotion.events("pause", "us-central1")[-1]["digest"]}
    registry_proxy.fail_always(503)
    code, verdicts = audit([good[0], sbom])
    assert (code, [v["verdict"] for v in verdicts]) == (75, ["VERIFIED", "RETRY"])


def test_a_failing_region_does_not_leave_digests_unresolved(
    tmp_path: Path, promotion: scenario.Promotion, registry: reg.RegistryServer
) -> None:
    with RegistryProxy(registry.url) as broken, RegistryProxy(registry.url) as healthy:
        destinations = [f"{broken.host}/us-central1/images", f"{healthy.host}/europe-west1/images"]
        images = [{"name": name, "dmap": dmap} for name, dmap in promotion.commits["commit-1"].items()]
        write_project(tmp_path / "m", scenario.PROJECT, destinations=destinations, images=images)
        broken.fail_always(503)
        published = rebuild(
            tmp_path / "m", open_store(str(tmp_path / "index.json")), source=Source(), registry_factory=client
        )
        assert published.resolution is not None
        assert (published.resolution.resolved, published.resolution.failed) == (3, 0)
        # At most one retry budget per request already in flight when the region failed; after that it
        # is left alone while the other region answers.
        assert len(broken.requests) <= 4 * 3
        healthy.fail_always(503)
        again = rebuild(
            tmp_path / "m", open_store(str(tmp_path / "other.json")), source=Source(), registry_factory=client
        )
        assert again.resolution is not None
        assert (again.resolution.failed, again.index.counts()["unresolved"]) == (3, 3)
