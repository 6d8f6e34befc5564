"""Both Cloud Functions end to end, on real parts on loopback.

Debian's registry (behind the counting proxy), fake-gcs-server holding the index, the Pub/Sub emulator
pushing the ``gcr`` topic to ``functions-framework --target audit``, and ``sync_index`` fetching commit
tarballs from a local server, exactly as it fetches GitHub's.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from function.index.freshness import MIN_CHECK_INTERVAL
from tests.support import registry as reg
from tests.support import scenario
from tests.support.gcs import GcsEmulator
from tests.support.pubsub import PubSubEmulator
from tests.support.stack import COMMIT_TIMES, FROZEN, Stack, running, sha

pytestmark = [pytest.mark.registry, pytest.mark.emulators]


@pytest.fixture(scope="module")
def stack(
    registry: reg.RegistryServer, gcs: GcsEmulator, pubsub: PubSubEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running(registry, gcs, pubsub, tmp_path_factory.mktemp("e2e")) as started:
        yield started


def test_a_promotion_merges_and_its_images_are_verified_without_registry_calls(stack: Stack) -> None:
    first = stack.webhook("commit-1")
    assert first.status_code == 200, first.text
    index, generation = stack.index()
    assert (index.source.commit, index.source.committed_at) == (sha("commit-1"), COMMIT_TIMES["commit-1"])
    assert index.counts()["unresolved"] == 0
    # The raw object in GCS is gzip.
    assert stack.store.read() is not None

    ids = [stack.publish(p) for p in stack.promotion.events("pause") + stack.promotion.events("logger")]
    verdicts = stack.verdicts_for(ids)
    assert {v["verdict"] for v in verdicts.values()} == {"VERIFIED"}
    # The signature's, the attestation's and the SBOM referrer's own manifests, each read once, and the
    # signature's and the attestation's one layer blob each.
    assert sum(v["registry_calls"] for v in verdicts.values()) == 5

    # commit-2 merges: the audit instance still holds commit-1's index and must reload before deciding etcd.
    stack.proxy.clear()
    second = stack.webhook("commit-2")
    assert second.status_code == 200, second.text
    assert json.loads(second.text)["counts"]["digests"] == 4
    assert len(stack.proxy.registry_requests()) == 1  # only etcd's new digest was resolved
    assert stack.index()[1] != generation
    # An instance looks for a newer index before a would-be REJECTED at most once a second; the
    # promoter's pushes come minutes after the merge, here a second is enough.
    time.sleep(MIN_CHECK_INTERVAL)
    ids = [stack.publish(p) for p in stack.promotion.events("etcd")]
    verdicts = stack.verdicts_for(ids)
    assert [(v["verdict"], v["registry_calls"]) for v in verdicts.values()] == [("VERIFIED", 0)] * 9
    assert {v["basis"] for v in verdicts.values()} == {"listed", "child"}


def test_unpromoted_pushes_are_rejected_and_redelivery_repeats_the_verdict(stack: Stack) -> None:
    assert stack.webhook("commit-2").status_code == 200
    path = f"{stack.proxy.host}/us-central1/images"
    stray = reg.push_image(stack.proxy.host, "us-central1/images/pause", seed="unpromoted")
    payloads = {
        "unknown_digest": {"action": "INSERT", "digest": f"{path}/pause@{stray}"},
        "unknown_image": {"action": "INSERT", "digest": f"{path}/evil@{stray}"},
        "deletion": {"action": "DELETE", "digest": f"{path}/pause@{stray}"},
        "not_audited": {"action": "INSERT", "digest": f"127.0.0.1:1/elsewhere/x@{stray}"},
        "frozen": {"action": "DELETE", "digest": f"{FROZEN}/pause@{stray}"},
    }
    ids = {stack.publish(p): reason for reason, p in payloads.items()}
    ids[stack.publish("not json")] = "malformed"
    verdicts = stack.verdicts_for(list(ids))
    for message_id, reason in ids.items():
        line = verdicts[message_id]
        if reason == "malformed":
            assert (line["verdict"], line["severity"]) == ("MALFORMED", "ERROR")
        elif reason == "not_audited":
            assert (line["verdict"], line["severity"], line["reason"]) == ("IGNORED", "INFO", reason)
        else:
            assert (line["verdict"], line["severity"], line["reason"]) == ("REJECTED", "ERROR", reason)
            assert line["@type"].endswith("ReportedErrorEvent")
    # The same push delivered twice (Pub/Sub is at-least-once) gets the same verdict.
    body = {
        "subscription": "projects/test-project/subscriptions/direct",
        "message": {
            "data": base64.b64encode(json.dumps(payloads["unknown_digest"]).encode()).decode(),
            "messageId": "dup-1",
        },
    }
    for _ in range(2):
        assert requests.post(stack.audit.url, json=body, timeout=30).status_code == 200
    repeated = [line for line in stack.audit.verdicts() if line.get("message_id") == "dup-1"]
    assert [(line["verdict"], line["reason"]) for line in repeated] == [("REJECTED", "unknown_digest")] * 2


def test_a_registry_outage_is_retried_until_the_registry_is_back(stack: Stack) -> None:
    assert stack.webhook("commit-2").status_code == 200
    etcd_index = stack.promotion.artifacts["etcd"][0].digest
    sbom = reg.push_referrer(stack.proxy.host, "europe-west1/images/etcd", etcd_index)
    lines = stack.outage({"action": "INSERT", "digest": f"{stack.proxy.host}/europe-west1/images/etcd@{sbom}"})
    assert {line["verdict"] for line in lines[:-1]} == {"RETRY"}
    assert all(line["severity"] == "WARNING" for line in lines[:-1])
    assert (lines[-1]["verdict"], lines[-1]["basis"]) == ("VERIFIED", "referrer")


def test_racing_syncs_leave_the_newest_commit_and_lose_nothing(stack: Stack) -> None:
    etcd = stack.promotion.artifacts["etcd"][0].digest
    for round_ in range(3):
        # Two commits an hour apart, pushed to two sync instances at once; each tags etcd once more, so
        # each changes what is promoted (a commit that changes nothing publishes nothing).
        commits = {
            f"race-{round_}-old": f"2026-12-0{round_ + 1}T10:00:00Z",
            f"race-{round_}-new": f"2026-12-0{round_ + 1}T11:00:00Z",
        }
        for commit in commits:
            images = copy.deepcopy(stack.promotion.commits["commit-2"])
            images["etcd"][etcd] = ["3.5.15", commit]
            scenario.write_tree(stack.work / commit, stack.promotion.host, images)
            stack.add_commit(commit, stack.work / commit)
        results: dict[str, int] = {}
        threads = [
            threading.Thread(target=_sync_into, args=(stack, commit, i, committed_at, results))
            for i, (commit, committed_at) in enumerate(commits.items())
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        index, _ = stack.index()
        assert index.source.commit == sha(f"race-{round_}-new"), results
        assert results[f"race-{round_}-new"] == 200
        # The older commit either published first and was superseded, or stood down.
        assert results[f"race-{round_}-old"] in (200, 409)
        assert index.counts()["digests"] == 4 and index.counts()["unresolved"] == 0
        assert f"race-{round_}-new" in (index.projects[scenario.PROJECT].images["etcd"].tags_of(etcd) or [])


def _sync_into(stack: Stack, commit: str, instance: int, committed_at: str, results: dict[str, int]) -> None:
    results[commit] = stack.webhook(commit, sync=instance, committed_at=committed_at).status_code


def test_bad_signatures_and_broken_manifests_keep_the_good_index(stack: Stack) -> None:
    good, generation = stack.index()
    assert stack.webhook("commit-2", secret="wrong").status_code == 401
    unsigned = requests.post(stack.syncs[0].url, data=b"{}", timeout=30)
    assert unsigned.status_code == 401
    assert requests.get(stack.syncs[0].url, timeout=30).status_code == 401
    broken = stack.webhook("broken", committed_at="2027-01-01T00:00:00Z")
    assert broken.status_code == 409
    assert "could not be read" in broken.json()["reason"]
    index, after = stack.index()
    assert after == generation and index.source.commit == good.source.commit
