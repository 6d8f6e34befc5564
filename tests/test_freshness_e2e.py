"""Freshness of the index and the sync an operator can trust, end to end (issues 9 and 12).

The whole stack on loopback (see tests/support/stack.py) with a short refresh interval and grace, a
server answering like GitHub's commits endpoint for resyncs, gated tarballs for slow syncs, and one
``sync_index`` instance with ``AUDITOR_SYNC_QUEUE`` on a Pub/Sub emulator topic that pushes back to it.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import yaml

from function.github.webhook import signature
from function.index.digests import Source
from function.index.freshness import MIN_CHECK_INTERVAL
from function.index.pending import PendingCommits
from function.index.publish import rebuild
from tests.support import registry as reg
from tests.support import scenario
from tests.support.gcs import GcsEmulator
from tests.support.pubsub import PubSubEmulator
from tests.support.stack import SECRET, Stack, running, sha

pytestmark = [pytest.mark.registry, pytest.mark.emulators]

REFRESH, GRACE = 2.0, 10.0
QUEUED = 2  # stack.syncs[2] runs with AUDITOR_SYNC_QUEUE
LATEST: dict[str, Any] = {}  # the images of the latest commit made by commit()


@pytest.fixture(scope="module")
def stack(
    registry: reg.RegistryServer, gcs: GcsEmulator, pubsub: PubSubEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    env = {"AUDITOR_REFRESH_SECONDS": str(REFRESH), "AUDITOR_PENDING_GRACE_SECONDS": str(GRACE)}
    with running(registry, gcs, pubsub, tmp_path_factory.mktemp("fresh"), env=env, queued_syncs=1) as started:
        assert started.webhook("commit-1").status_code == 200
        yield started


@pytest.fixture(autouse=True)
def no_pending(stack: Stack) -> None:
    """Each test starts with no commit pending (one test leaves a stuck sync behind on purpose)."""
    records = stack.store.records("pending")
    for name in records.read_all():
        records.delete(name)


def logger_v2(stack: Stack) -> str:
    """The successor of the scenario's logger list, pushed (the same digest every time it is pushed)."""
    return reg.push_image(stack.proxy.host, "us-central1/images/logger", tag="v2", seed="logger v2")


def commit(stack: Stack, name: str, change: Callable[[dict[str, Any]], None]) -> str:
    """A k8s.io commit that changes the latest commit's images with ``change``, served as a tarball; its
    SHA. Commits build on each other, as k8s.io's do (the index refuses to lose promoted digests)."""
    images = copy.deepcopy(LATEST or stack.promotion.commits["commit-2"])
    change(images)
    LATEST.clear()
    LATEST.update(images)
    root = stack.work / name
    scenario.write_tree(root, stack.promotion.host, images)
    return stack.add_commit(name, root)


def decided(stack: Stack, payload: dict[str, str], timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every verdict line of one message, up to the first that is not RETRY."""
    message_id = stack.publish(payload)
    return stack.lines_of(message_id, lambda lines: bool(lines) and lines[-1]["verdict"] != "RETRY", timeout)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_new_destination_is_audited_within_the_refresh_interval_without_any_reject(stack: Stack) -> None:
    host = stack.promotion.host
    pause = stack.promotion.artifacts["pause"][0].digest
    at_new_region = {"action": "INSERT", "digest": f"{host}/us-east4/images/pause@{pause}"}
    [line] = decided(stack, at_new_region)
    assert (line["verdict"], line["reason"]) == ("IGNORED", "not_audited")
    # k8s.io adds a region to the project's destinations.
    root = stack.work / "new-region"
    stack.promotion.write_manifests("commit-1", root)
    promoter = root / "manifests" / scenario.PROJECT / "promoter-manifest.yaml"
    document = yaml.safe_load(promoter.read_text())
    document["registries"].append({"name": f"{host}/us-east4/images", "service-account": "p@example.com"})
    promoter.write_text(yaml.safe_dump(document))
    stack.add_commit("new-region", root)
    assert stack.webhook("new-region", committed_at="2026-11-04T10:00:00Z").status_code == 200
    time.sleep(REFRESH + 0.5)
    [line] = decided(stack, at_new_region)
    assert (line["verdict"], line["basis"], line["index"]["commit"]) == ("VERIFIED", "listed", sha("new-region"))
    assert not [line for line in stack.audit.verdicts() if line["verdict"] == "REJECTED"]


def test_a_removed_digest_is_rejected_once_the_refresh_interval_has_passed(stack: Stack) -> None:
    host = stack.promotion.host
    logger = stack.promotion.artifacts["logger"][0].digest
    payload = {"action": "INSERT", "digest": f"{host}/us-central1/images/logger@{logger}"}
    assert [line["verdict"] for line in decided(stack, payload)] == ["VERIFIED"]
    # logger v1 is yanked for a v2 (by hand: more than --max-loss of this small index goes). v2 is in the
    # registry: were it nowhere, v1 could be one of its platform children pushed first (RETRY `parent not
    # yet pushed`) rather than a stray digest.
    v2 = logger_v2(stack)
    root = stack.work / "yank"
    images = copy.deepcopy(stack.promotion.commits["commit-1"])
    images["logger"] = {v2: ["v2"]}
    scenario.write_tree(root, host, images)
    rebuild(root, stack.store, source=Source(sha("yank"), "2026-11-05T10:00:00Z"), max_loss=1.0)
    time.sleep(REFRESH + 0.5)
    [line] = decided(stack, payload)
    assert (line["verdict"], line["reason"], line["index"]["commit"]) == ("REJECTED", "unknown_digest", sha("yank"))


def test_a_resync_pins_the_head_and_an_older_push_then_cannot_roll_it_back(stack: Stack) -> None:
    # commit-2's images (etcd added) and the yanked logger's successor.
    v2 = logger_v2(stack)
    head = commit(stack, "head", lambda images: images["logger"].update({v2: ["v2"]}))
    stack.commits.heads["main"] = (head, "2026-11-06T10:00:00Z")
    # What the old resync fetched: the branch by name, whatever it pointed at by then.
    stack.tarballs.files["main.tar.gz"] = stack.tarballs.files[f"{head}.tar.gz"]
    stack.tarballs.requests.clear()
    response = stack.resync()
    assert response.status_code == 200, response.text
    assert stack.tarballs.requests == [f"/{head}.tar.gz"]
    index, generation = stack.index()
    assert (index.source.commit, index.source.committed_at) == (head, "2026-11-06T10:00:00Z")
    # GitHub's "Redeliver" of an older push.
    older = stack.webhook("commit-2")
    assert older.status_code == 409, older.text
    index, after = stack.index()
    assert (index.source.commit, after) == (head, generation)


def test_a_promotion_racing_its_slow_sync_waits_and_is_verified_after_it(stack: Stack) -> None:
    host = stack.promotion.host
    image = reg.push_image(stack.proxy.host, "us-central1/images/kube-proxy", tag="v1.31.0", seed="kube-proxy")
    merged = commit(stack, "kube-proxy", lambda images: images.update({"kube-proxy": {image: ["v1.31.0"]}}))
    gate = stack.tarballs.gates[f"{merged}.tar.gz"] = threading.Event()
    answers: list[requests.Response] = []
    syncing = threading.Thread(
        target=lambda: answers.append(stack.webhook("kube-proxy", committed_at="2026-11-07T10:00:00Z"))
    )
    syncing.start()
    try:
        wait_for(lambda: bool(PendingCommits.beside(stack.store).all()))
        time.sleep(MIN_CHECK_INTERVAL)  # what an instance knows may be this old; the promoter takes minutes
        path = f"{host}/us-central1/images/kube-proxy"
        message_id = stack.publish({"action": "INSERT", "digest": f"{path}@{image}", "tag": f"{path}:v1.31.0"})
        [first] = stack.lines_of(message_id, bool)[:1]
        assert (first["verdict"], first["reason"], first["severity"]) == ("RETRY", "index behind", "WARNING")
        assert merged in first["message"]
    finally:
        gate.set()
        syncing.join()
    assert answers[0].status_code == 200, answers[0].text
    lines = stack.lines_of(message_id, lambda lines: lines[-1]["verdict"] != "RETRY")
    assert {line["reason"] for line in lines[:-1]} == {"index behind"}
    assert (lines[-1]["verdict"], lines[-1]["basis"], lines[-1]["index"]["commit"]) == ("VERIFIED", "listed", merged)


def test_a_sync_that_never_completes_is_an_alarm_after_the_grace(stack: Stack) -> None:
    stuck = sha("stuck")  # no tarball is served for it: every attempt fails
    response = stack.webhook("stuck", committed_at="2026-11-08T10:00:00Z")
    assert response.status_code == 503
    recorded = time.monotonic()
    time.sleep(MIN_CHECK_INTERVAL)
    host = stack.promotion.host
    stray = reg.push_image(stack.proxy.host, "us-central1/images/pause", seed="never promoted")
    lines = decided(
        stack, {"action": "INSERT", "digest": f"{host}/us-central1/images/pause@{stray}"}, timeout=GRACE * 4
    )
    assert lines[0]["reason"] == "index behind"
    assert (lines[-1]["verdict"], lines[-1]["reason"]) == ("REJECTED", "unknown_digest")
    assert time.monotonic() - recorded >= GRACE - 1
    stale = [line for line in stack.audit.lines() if line.get("freshness") == "stale_sync"]
    assert stale and {(line["commit"], line["severity"]) for line in stale} == {(stuck, "ERROR")}
    assert "verdict" not in stale[0]


def test_webhooks_with_a_bad_commit_or_a_non_ascii_signature_are_refused(stack: Stack) -> None:
    touched = [{"added": [], "removed": [], "modified": ["registry.k8s.io/images/demo/images.yaml"]}]
    body = json.dumps({"ref": "refs/heads/main", "after": "../../../etc/passwd", "commits": touched}).encode()
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature(SECRET, body)}
    response = requests.post(stack.syncs[0].url, data=body, headers=headers, timeout=30)
    assert response.status_code == 400 and "40 lowercase hex" in response.json()["reason"]
    headers["X-Hub-Signature-256"] = "sha256=" + "é" * 64
    response = requests.post(stack.syncs[0].url, data=body, headers=headers, timeout=30)
    assert response.status_code == 401


def test_with_a_queue_the_webhook_is_answered_at_once_and_the_rebuild_follows(stack: Stack) -> None:
    etcd = stack.promotion.artifacts["etcd"][0].digest
    queued = commit(stack, "queued", lambda images: images.update({"etcd": {etcd: ["3.5.15", "queued"]}}))
    gate = stack.tarballs.gates[f"{queued}.tar.gz"] = threading.Event()
    try:
        started = time.monotonic()
        response = stack.webhook("queued", sync=QUEUED, committed_at="2026-11-09T10:00:00Z")
        answered = time.monotonic() - started
        assert (response.status_code, response.json()["status"]) == (202, "queued")
        assert answered < 5.0
        assert [p.commit for p in PendingCommits.beside(stack.store).all()] == [queued]
        assert stack.index()[0].source.commit != queued
    finally:
        gate.set()
    wait_for(lambda: stack.index()[0].source.commit == queued, timeout=60)

    def outcomes() -> list[str]:
        return [line["sync"] for line in stack.syncs[QUEUED].lines() if line.get("commit") == queued and "sync" in line]

    wait_for(lambda: "published" in outcomes())
    assert outcomes() == ["queued", "published"]
    assert PendingCommits.beside(stack.store).all() == []


def test_a_resync_that_changes_nothing_writes_no_generation(stack: Stack) -> None:
    index, generation = stack.index()
    assert index.source.commit is not None and index.source.committed_at is not None
    stack.commits.heads["main"] = (index.source.commit, index.source.committed_at)
    response = stack.resync()
    assert (response.status_code, response.json()["status"]) == (200, "unchanged")
    assert stack.index()[1] == generation


def test_the_first_online_build_reported_its_rounds(stack: Stack) -> None:
    # The module's first sync found no index: it published the offline index, then resolved in a round.
    sync_lines = [line for line in stack.syncs[0].lines() if line.get("commit") == sha("commit-1")]
    rounds = [line["resolution"] for line in sync_lines if "resolution" in line]
    assert rounds and rounds[0]["round"] == 1
    assert (rounds[-1]["remaining"], rounds[-1]["failed"]) == (0, 0)
    assert rounds[0]["resolved"] == 3 and rounds[0]["generation"] is not None
    [outcome] = [line for line in sync_lines if "sync" in line]
    assert outcome["sync"] == "published" and outcome["generation"] == rounds[-1]["generation"]
