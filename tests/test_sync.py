"""``sync_index`` in-process on a local store: pinned resyncs, the commit-order guard on every path, no
write when nothing changed, pending records, the structured outcome lines, webhook hygiene, and the
first online build published before its resolution ends."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from function.errors import RETRYABLE, kind
from function.github import head
from function.github.queue import QueueError, RebuildRequest, SyncQueue
from function.github.webhook import signature
from function.index.digests import Source
from function.index.pending import PendingCommits
from function.index.publish import Refused, Round, read_index, rebuild
from function.registry.client import RegistryClient
from function.services.sync import SyncService
from function.settings import Oidc
from function.storage.uri import open_store
from tests.support import scenario
from tests.support.functions import CommitsServer, TarballServer
from tests.support.manifests import digest, write_project
from tests.support.oidc import QUEUE, SCHEDULER, SYNC_URL, CertServer, bearer
from tests.support.proxy import RegistryProxy
from tests.support.rigs import AR, LATER_SHA, MID_SHA, NEW_SHA, OLD_SHA, SECRET, TIMES, Headers, SyncRig


@pytest.fixture
def rig(tmp_path: Path, google_certs: CertServer) -> Iterator[SyncRig]:
    with TarballServer() as tarballs, CommitsServer() as commits:
        yield SyncRig(tmp_path, tarballs, commits, google_certs)


def test_a_resync_rebuilds_the_pinned_head_and_an_older_push_cannot_roll_it_back(rig: SyncRig) -> None:
    status, body = rig.resync(NEW_SHA)
    assert (status, body["status"], body["commit"]) == (200, "published", NEW_SHA)
    # The tarball of exactly the pinned commit, never of the branch name.
    assert rig.tarballs.requests == [f"/{NEW_SHA}.tar.gz"]
    assert rig.commits.requests == ["/repos/kubernetes/k8s.io/commits/main"]
    source, generation = rig.index()
    assert (source.commit, source.committed_at) == (NEW_SHA, TIMES[NEW_SHA])
    # GitHub's "Redeliver" of an older push, after the resync.
    status, body = rig.push(OLD_SHA)
    assert (status, body["status"]) == (409, "refused")
    assert "newer commit" in body["reason"]
    assert rig.index() == (source, generation)
    assert [(line["sync"], line["severity"]) for line in rig.lines() if "sync" in line] == [
        ("published", "INFO"),
        ("refused", "ERROR"),
    ]
    # Neither commit is left pending: one is published, the other is older than what is.
    assert PendingCommits.beside(rig.store).all() == []


def test_a_resync_that_changes_nothing_writes_no_generation(rig: SyncRig) -> None:
    assert rig.resync(NEW_SHA)[0] == 200
    _, generation = rig.index()
    status, body = rig.resync(NEW_SHA)
    assert (status, body["status"], body["generation"]) == (200, "unchanged", generation)
    assert rig.index()[1] == generation
    # A newer commit whose manifests promote the same is recorded (the order guard compares against the
    # recorded commit), once; its hourly resyncs write nothing more.
    status, body = rig.push(LATER_SHA)
    assert (status, body["status"]) == (200, "published")
    source, later = rig.index()
    assert (source.commit, later != generation) == (LATER_SHA, True)
    status, body = rig.resync(LATER_SHA)
    assert (status, body["status"], body["generation"]) == (200, "unchanged", later)
    assert PendingCommits.beside(rig.store).all() == []
    unchanged = [line for line in rig.lines() if line.get("sync") == "unchanged"]
    assert [(line["commit"], line["generation"], line["severity"]) for line in unchanged] == [
        (NEW_SHA, generation, "INFO"),
        (LATER_SHA, later, "INFO"),
    ]
    # A replayed push of the commit in between, whose content LATER took back, cannot roll it back.
    status, body = rig.push(MID_SHA)
    assert (status, body["status"]) == (409, "refused")
    assert rig.index() == (source, later)


def test_a_push_is_recorded_as_pending_before_its_rebuild_and_cleared_after(rig: SyncRig) -> None:
    gate = rig.tarballs.gates[f"{NEW_SHA}.tar.gz"] = threading.Event()
    answer: list[tuple[int, dict[str, Any]]] = []
    syncing = threading.Thread(target=lambda: answer.append(rig.push(NEW_SHA)))
    syncing.start()
    pending = PendingCommits.beside(rig.store)
    try:
        for _ in range(200):
            if pending.all():
                break
            time.sleep(0.05)
        [recorded] = pending.all()
        assert (recorded.commit, recorded.committed_at) == (NEW_SHA, TIMES[NEW_SHA])
        assert rig.store.read() is None  # not published yet
    finally:
        gate.set()
        syncing.join()
    assert answer[0][0] == 200
    assert pending.all() == []


def test_a_failed_sync_leaves_its_commit_pending_and_says_so(rig: SyncRig) -> None:
    del rig.tarballs.files[f"{NEW_SHA}.tar.gz"]
    status, body = rig.push(NEW_SHA)
    assert (status, body["status"]) == (503, "failed")
    [line] = [line for line in rig.lines() if "sync" in line]
    assert (line["sync"], line["commit"], line["severity"]) == ("failed", NEW_SHA, "ERROR")
    assert [p.commit for p in PendingCommits.beside(rig.store).all()] == [NEW_SHA]


def test_a_head_that_cannot_be_pinned_fails_the_resync(rig: SyncRig) -> None:
    response = rig.service.handle("POST", Headers({"Authorization": bearer()}), b"")
    assert (response.status, response.body["status"]) == (503, "failed")
    assert "404" in response.body["reason"]
    assert rig.tarballs.requests == []


@pytest.mark.parametrize("after", ["../../../etc/passwd", "main", "A" * 40, "1" * 39])
def test_a_push_whose_after_is_not_a_sha_is_a_bad_request(rig: SyncRig, after: str) -> None:
    status, body = rig.push(OLD_SHA, after=after)
    assert (status, body["status"]) == (400, "refused")
    assert rig.tarballs.requests == []


def test_a_push_sent_as_a_form_is_a_bad_request_that_names_the_content_type(rig: SyncRig) -> None:
    # GitHub's other content type for webhooks: the payload form-encoded.
    body = b"payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D"
    headers = Headers({"X-GitHub-Event": "push", "X-Hub-Signature-256": signature(SECRET, body)})
    response = rig.service.handle("POST", headers, body)
    assert (response.status, response.body["status"]) == (400, "refused")
    assert "application/json" in response.body["reason"]
    assert rig.tarballs.requests == []


def test_a_signature_that_is_not_ascii_is_refused_with_401(rig: SyncRig) -> None:
    status, body = rig.push(OLD_SHA, sig="sha256=" + "é" * 64)
    assert (status, body["status"]) == (401, "refused")


def test_pinning_the_head_reads_githubs_answer_format() -> None:
    answer = {"sha": NEW_SHA, "commit": {"committer": {"date": TIMES[NEW_SHA]}, "author": {"date": "x"}}}
    assert head.parse(json.dumps(answer).encode(), "u") == head.Head(NEW_SHA, TIMES[NEW_SHA])
    for broken in ({"sha": "main", "commit": answer["commit"]}, {"sha": NEW_SHA}, [answer]):
        with pytest.raises(head.HeadError):
            head.parse(json.dumps(broken).encode(), "u")
    with pytest.raises(head.HeadError, match="https"):
        head.pin("http://api.github.com/repos/kubernetes/k8s.io/commits/{branch}", "main")


def test_an_index_without_a_commit_time_never_replaces_one_with_a_time(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "index.json"))
    root = tmp_path / "m"
    write_project(root, "p", destinations=[AR], images=[{"name": "pause", "dmap": {digest("a"): ["1"]}}])
    rebuild(root, store, source=Source(NEW_SHA, TIMES[NEW_SHA]))
    write_project(root, "p", destinations=[AR], images=[{"name": "pause", "dmap": {digest("b"): ["1"]}}])
    with pytest.raises(Refused, match="no commit time"):
        rebuild(root, store, source=Source("hand-built"), max_loss=1.0)
    # A person who knows better says so.
    published = rebuild(root, store, source=Source("hand-built"), max_loss=1.0, force=True)
    assert published.changed and published.index.source.commit == "hand-built"


@pytest.mark.registry
def test_a_first_online_build_is_published_before_its_resolution_ends(
    tmp_path: Path, registry_proxy: RegistryProxy
) -> None:
    promotion = scenario.promote(registry_proxy.host, via=registry_proxy.host)
    root = promotion.write_manifests("commit-2", tmp_path / "commit-2")
    store = open_store(str(tmp_path / "index.json"))
    seen: list[tuple[int, int]] = []

    def progress(done: Round) -> None:
        stored = read_index(store)
        assert stored is not None
        seen.append((done.number, stored.counts()["unresolved"]))

    registry_proxy.clear()
    published = rebuild(
        root,
        store,
        source=Source(NEW_SHA, TIMES[NEW_SHA]),
        registry_factory=RegistryClient,
        round_size=1,
        progress=progress,
    )
    # Four listed digests, one per round: the index is in the store, and the auditor can use it, while
    # three of them are still to be resolved.
    assert seen == [(1, 3), (2, 2), (3, 1), (4, 0)]
    assert len(published.rounds) == 4 and published.index.counts()["unresolved"] == 0
    assert len(registry_proxy.registry_requests()) == 4


def envelope(sha: str) -> bytes:
    data = json.dumps({"commit": sha, "committed_at": TIMES[sha], "reason": "push"}).encode()
    message = {"data": base64.b64encode(data).decode(), "messageId": "7"}
    return json.dumps({"subscription": "projects/p/subscriptions/s", "message": message}).encode()


def test_a_queued_rebuild_is_rebuilt_here_and_acknowledged_unless_trying_again_can_help(
    rig: SyncRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a queue of its own that cannot be reached: a delivery is rebuilt here, never queued again.
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:1")
    rig.service.queue = SyncQueue("projects/test-project/topics/sync")

    def deliver(body: bytes, authorization: str = bearer(QUEUE)) -> tuple[int, str]:
        headers = Headers({"Content-Type": "application/json", "Authorization": authorization})
        response = rig.service.handle("POST", headers, body)
        return response.status, response.body["status"]

    assert deliver(envelope(NEW_SHA)) == (200, "published")
    assert rig.index()[0].commit == NEW_SHA
    assert "queued" not in [line["sync"] for line in rig.lines("sync")]
    # Refused for good: acknowledged, so that Pub/Sub does not deliver it forever.
    assert deliver(envelope(OLD_SHA)) == (200, "refused")
    # A fault: 503, so that Pub/Sub delivers it again.
    del rig.tarballs.files[f"{LATER_SHA}.tar.gz"]
    assert deliver(envelope(LATER_SHA)) == (503, "failed")
    # Without the queue account's token nothing is built, whatever the envelope says.
    requests_before = len(rig.tarballs.requests)
    assert deliver(envelope(LATER_SHA), authorization=signature(SECRET, envelope(LATER_SHA))) == (401, "refused")
    assert len(rig.tarballs.requests) == requests_before
    # An invoker's envelope that holds no rebuild request cannot get better: not acknowledged, dead-lettered.
    assert deliver(b'{"subscription": "s", "message": {"data": "bm90IGpzb24="}}') == (400, "refused")


def test_a_push_that_cannot_be_queued_fails_but_stays_pending(rig: SyncRig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:1")  # nothing listens there
    rig.service.queue = SyncQueue("projects/test-project/topics/sync")
    status, body = rig.push(NEW_SHA)
    assert (status, body["status"]) == (503, "failed")
    assert "projects/test-project/topics/sync" in body["reason"]
    assert rig.tarballs.requests == []
    assert [p.commit for p in PendingCommits.beside(rig.store).all()] == [NEW_SHA]


def test_a_queue_that_never_answers_fails_within_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as silent:
        # Connections complete in the kernel's backlog and are never answered.
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{silent.getsockname()[1]}")
        sync_queue = SyncQueue("projects/test-project/topics/sync", deadline_seconds=1.0)
        started = time.monotonic()
        with pytest.raises(QueueError, match="no answer within 1 s") as raised:
            sync_queue.publish(RebuildRequest(NEW_SHA, TIMES[NEW_SHA], "push"))
        assert time.monotonic() - started < 2.0
    # A fault that may heal: the sync answers 503 and GitHub delivers the push again.
    assert kind(raised.value) == RETRYABLE


@pytest.mark.emulators
def test_pending_records_in_cloud_storage_keep_the_first_time_and_clear_what_a_publication_covers(
    gcs_env: str,
) -> None:
    now = [100.0]
    pending = PendingCommits.beside(open_store(f"gs://{gcs_env}/index.json.gz"), wall=lambda: now[0])
    assert pending.all() == []
    assert pending.record(OLD_SHA, TIMES[OLD_SHA])
    now[0] = 200.0
    # A second sync of the same commit (GitHub's redelivery, racing the first) keeps the first record.
    assert not pending.record(OLD_SHA, TIMES[OLD_SHA])
    pending.record(LATER_SHA, TIMES[LATER_SHA])
    assert [(p.commit, p.recorded_at) for p in pending.all()] == [(OLD_SHA, 100.0), (LATER_SHA, 200.0)]
    assert pending.records.uri == f"gs://{gcs_env}/index.json.gz.pending/"
    # Publishing NEW covers OLD (older) but not LATER.
    assert pending.clear(Source(NEW_SHA, TIMES[NEW_SHA])) == 1
    assert [p.commit for p in pending.newer_than(Source(NEW_SHA, TIMES[NEW_SHA]))] == [LATER_SHA]


def test_without_oidc_settings_every_resync_and_queued_rebuild_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AUDITOR_INDEX_URI", str(tmp_path / "index.json"))
    for name in ("AUDITOR_OIDC_AUDIENCE", "AUDITOR_OIDC_INVOKERS"):
        monkeypatch.delenv(name, raising=False)
    with caplog.at_level("WARNING"):
        service = SyncService.from_environment()
    # Said once at start, and again with every refusal.
    assert "AUDITOR_OIDC_AUDIENCE and AUDITOR_OIDC_INVOKERS are not set" in caplog.text
    for body in (b"", envelope(NEW_SHA)):
        response = service.handle("POST", Headers({"Authorization": bearer()}), body)
        assert (response.status, response.body["reason"]) == (401, "unauthenticated")
    assert read_index(service.store) is None


def test_a_token_that_cannot_be_checked_for_want_of_googles_keys_is_tried_again(rig: SyncRig) -> None:
    rig.service.invokers = Oidc(SYNC_URL, frozenset({SCHEDULER}), "http://127.0.0.1:1/oauth2/v1/certs")
    response = rig.service.handle("POST", Headers({"Authorization": bearer()}), b"")
    # 503: Cloud Scheduler and Pub/Sub deliver it again; nothing was pinned or built meanwhile.
    assert (response.status, response.body["status"]) == (503, "failed")
    assert (rig.commits.requests, rig.tarballs.requests) == ([], [])
