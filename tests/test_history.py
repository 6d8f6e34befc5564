"""Order is history: ``sync_index`` publishes a commit only when GitHub's compare endpoint places it after
the published one (issue 16), and asks GitHub with ``AUDITOR_GITHUB_TOKEN`` where one is set.

``sync_index`` in-process, publishing to fake-gcs-server, against a loopback server answering GitHub's
commits and compare endpoints from a commit graph (tests/support/github.py). OLD, NEW, MID and LATER are
made one after the other on main (tests/support/rigs.py); the tests change their times or add commits
beside them.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from function.github import compare
from function.github.queue import RebuildRequest, SyncQueue
from function.index.pending import PendingCommits
from function.index.publish import read_index
from function.services.sync import SyncService
from function.storage.uri import open_store
from tests.support.functions import TarballServer
from tests.support.github import RATE_LIMITED, SERVER_ERROR, GitHubServer
from tests.support.oidc import QUEUE, CertServer, bearer
from tests.support.rigs import LATER_SHA, MID_SHA, NEW_SHA, OLD_SHA, TIMES, Headers, SyncRig

pytestmark = pytest.mark.emulators

FORK_SHA = "5" * 40
TOKEN = "ghp_sync-token-for-tests"


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    with GitHubServer() as server:
        yield server


@pytest.fixture
def rig(tmp_path: Path, gcs_env: str, github: GitHubServer, google_certs: CertServer) -> Iterator[SyncRig]:
    with TarballServer() as tarballs:
        yield SyncRig(tmp_path, tarballs, github, google_certs, open_store(f"gs://{gcs_env}/index.json.gz"))


def compared(github: GitHubServer) -> list[str]:
    return [path.rpartition("/compare/")[2] for path in github.requests if "/compare/" in path]


def sync_lines(rig: SyncRig) -> list[tuple[str, str, str]]:
    return [(line["sync"], line["commit"], line["severity"]) for line in rig.lines() if "sync" in line]


def test_the_first_index_is_published_unasked_and_a_later_commit_once_github_says_ahead(
    rig: SyncRig, github: GitHubServer
) -> None:
    assert rig.push(NEW_SHA)[0] == 200
    assert compared(github) == []  # nothing published yet: nothing to compare with
    status, body = rig.push(MID_SHA)
    assert (status, body["status"]) == (200, "published")
    assert compared(github) == [f"{NEW_SHA}...{MID_SHA}"]
    assert rig.index()[0].commit == MID_SHA


def test_the_published_commit_again_is_identical_and_confirmed_without_asking(
    rig: SyncRig, github: GitHubServer
) -> None:
    assert rig.push(NEW_SHA)[0] == 200
    _, generation = rig.index()
    status, body = rig.resync(NEW_SHA)
    assert (status, body["status"], body["generation"]) == (200, "unchanged", generation)
    # The same SHA is identical by definition: no request of GitHub's hourly allowance is spent on it.
    assert compared(github) == []
    assert rig.store.confirmation() is not None


def made(rig: SyncRig, github: GitHubServer, *commits: tuple[str, int, str]) -> None:
    """Commits on main, one after the other: (SHA, how many releases of pause it promotes, committer time)."""
    for sha, releases, committed_at in commits:
        rig.add_commit(sha, releases)
        github.add(sha, committed_at)


def refused_over(rig: SyncRig, published: str, pushed: str) -> dict[str, Any]:
    """Publish ``published``, then push ``pushed``: refused with 409, the object in the bucket unchanged."""
    assert rig.push(published)[0] == 200
    stored = rig.store.read()
    status, body = rig.push(pushed)
    assert (status, body["status"]) == (409, "refused")
    assert rig.store.read() == stored
    return body


def test_an_older_commit_is_refused_even_when_its_clock_says_later(rig: SyncRig, github: GitHubServer) -> None:
    # PARENT's committer clock ran three days ahead; CHILD, made on it, took back one of its eleven
    # releases (less than the loss guard's share: only the order guard can stop the way back).
    parent, child = "8" * 40, "9" * 40
    made(rig, github, (parent, 11, "2026-11-07T10:00:00Z"), (child, 10, "2026-11-04T10:00:00Z"))
    refused_over(rig, child, parent)
    assert compared(github) == [f"{child}...{parent}"]
    # Refused for good: it holds no alarm back as a pending sync.
    assert [p.commit for p in PendingCommits.beside(rig.store).all()] == []


def test_two_commits_in_the_same_second_do_not_roll_the_index_back(rig: SyncRig, github: GitHubServer) -> None:
    # Two merges in the same second; the second adds an eleventh release (so that going back loses less
    # than the loss guard's share, and only the order guard can stop it).
    first, second = "6" * 40, "7" * 40
    made(rig, github, (first, 10, "2026-11-04T10:00:00Z"), (second, 11, "2026-11-04T10:00:00Z"))
    assert rig.push(first)[0] == 200
    # GitHub's redelivery of the first push, after the second's.
    refused_over(rig, second, first)
    published = read_index(rig.store)
    assert published is not None and published.counts()["digests"] == 11


def test_a_commit_dated_in_the_future_does_not_wedge_the_commits_after_it(rig: SyncRig, github: GitHubServer) -> None:
    github.add(NEW_SHA, "2030-01-01T00:00:00Z")
    assert rig.push(NEW_SHA)[0] == 200
    status, body = rig.push(MID_SHA)
    assert (status, body["status"]) == (200, "published")
    assert rig.index()[0].commit == MID_SHA


def test_a_diverged_commit_is_refused_with_an_error_naming_both_commits(rig: SyncRig, github: GitHubServer) -> None:
    # FORK branches off OLD beside NEW (a force-push of main), with a later time and other content.
    rig.add_commit(FORK_SHA, 3)
    github.add(FORK_SHA, "2026-11-04T10:00:00Z", parents=(OLD_SHA,))
    refused_over(rig, NEW_SHA, FORK_SHA)
    [refused] = [line for line in rig.lines() if line.get("sync") == "refused"]
    assert (refused["severity"], refused["commit"]) == ("ERROR", FORK_SHA)
    assert NEW_SHA in refused["message"] and FORK_SHA in refused["message"]
    assert "diverged" in refused["message"]


@pytest.mark.parametrize("fault", ["500", "rate limit", "no status", "unreachable"])
def test_when_the_order_cannot_be_had_nothing_is_published(rig: SyncRig, github: GitHubServer, fault: str) -> None:
    assert rig.push(NEW_SHA)[0] == 200
    source, generation = rig.index()
    if fault == "unreachable":
        rig.service.history = compare.History("http://127.0.0.1:1/compare/{base}...{head}")
    else:
        github.answers["compare"] = {
            "500": SERVER_ERROR,
            "rate limit": RATE_LIMITED,
            "no status": (200, {"message": "Moved Permanently"}),
        }[fault]
    status, body = rig.push(MID_SHA)
    assert (status, body["status"]) == (503, "failed")
    assert rig.index() == (source, generation)
    assert sync_lines(rig)[-1] == ("failed", MID_SHA, "ERROR")
    # Still pending: the next delivery or resync tries again.
    assert [p.commit for p in PendingCommits.beside(rig.store).all()] == [MID_SHA]
    if fault == "rate limit":
        assert "AUDITOR_GITHUB_TOKEN" in body["reason"]
    # Once GitHub answers, the same commit is published.
    github.answers.clear()
    rig.service.history = compare.History(github.compare_template)
    assert rig.push(MID_SHA)[1]["status"] == "published"


def test_a_queued_rebuild_whose_order_cannot_be_had_is_delivered_again(
    rig: SyncRig, github: GitHubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:1")  # never reached: these are deliveries
    rig.service.queue = SyncQueue("projects/test-project/topics/sync")
    assert deliver(rig, NEW_SHA) == (200, "published")
    _, generation = rig.index()
    github.answers["compare"] = SERVER_ERROR
    # 503: Pub/Sub delivers the message again (a refusal is acknowledged with 200).
    assert deliver(rig, MID_SHA) == (503, "failed")
    assert rig.index()[1] == generation
    github.answers.clear()
    assert deliver(rig, MID_SHA) == (200, "published")


@pytest.mark.parametrize("token", [TOKEN, None])
def test_github_is_asked_with_the_token_where_one_is_set(
    tmp_path: Path,
    gcs_env: str,
    github: GitHubServer,
    google_certs: CertServer,
    token: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    store = open_store(f"gs://{gcs_env}/index.json.gz")
    with TarballServer() as tarballs:
        rig = SyncRig(tmp_path, tarballs, github, google_certs, store, github_token=token)
        assert rig.resync(NEW_SHA)[0] == 200
        assert rig.push(LATER_SHA)[0] == 200
    assert {authorization for _, authorization in github.authorizations} == {f"Bearer {token}" if token else None}
    asked = {path.split("/")[4] for path, _ in github.authorizations}
    assert asked == {"commits", "compare"}
    # The token is a credential: no line says it.
    assert TOKEN not in json.dumps(rig.lines()) + caplog.text


def test_the_environment_sets_the_compare_endpoint_and_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDITOR_INDEX_URI", str(tmp_path / "index.json"))
    monkeypatch.setenv("AUDITOR_COMPARE_URL", "https://ghe.example/api/v3/repos/k/k/compare/{base}...{head}")
    monkeypatch.setenv("AUDITOR_GITHUB_TOKEN", TOKEN)
    service = SyncService.from_environment()
    assert (service.history.template, service.history.token, service.github_token) == (
        "https://ghe.example/api/v3/repos/k/k/compare/{base}...{head}",
        TOKEN,
        TOKEN,
    )


def test_a_push_records_the_committer_time_that_a_resync_records(rig: SyncRig, github: GitHubServer) -> None:
    # NEW was rebased onto main: its author time is a month older than its committer time, and the
    # push payload's head_commit.timestamp (documented only as "the timestamp of the commit") says the
    # author's.
    authored = "2026-10-02T08:00:00+02:00"
    github.add(NEW_SHA, TIMES[NEW_SHA], authored_at=authored)
    assert rig.push(NEW_SHA, timestamp=authored)[0] == 200
    pushed, generation = rig.index()
    assert pushed.committed_at == TIMES[NEW_SHA]
    # The hourly resync of the same head reads the same time: the index stays as it is.
    status, body = rig.resync(NEW_SHA)
    assert (status, body["status"], body["generation"]) == (200, "unchanged", generation)
    assert rig.index() == (pushed, generation)


def test_a_push_whose_commit_cannot_be_read_records_the_payloads_time(
    rig: SyncRig, github: GitHubServer, caplog: pytest.LogCaptureFixture
) -> None:
    github.answers["commits"] = SERVER_ERROR
    assert rig.push(NEW_SHA, timestamp="2026-11-02T10:00:01Z")[0] == 200
    assert rig.index()[0].committed_at == "2026-11-02T10:00:01Z"
    assert "may be its author time" in caplog.text


def envelope(sha: str) -> bytes:
    data = RebuildRequest(sha, TIMES[sha], "push").data()
    message = {"data": base64.b64encode(data).decode(), "messageId": "7"}
    return json.dumps({"subscription": "projects/p/subscriptions/s", "message": message}).encode()


def deliver(rig: SyncRig, sha: str) -> tuple[int, str]:
    """Pub/Sub's push of a queued rebuild of ``sha``, with the queue account's token."""
    headers = Headers({"Content-Type": "application/json", "Authorization": bearer(QUEUE)})
    response = rig.service.handle("POST", headers, envelope(sha))
    return response.status, response.body["status"]
