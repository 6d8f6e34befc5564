"""``sync_index`` under functions-framework lets a resync or a queued rebuild in only with a Google-signed
ID token of an allowed account for exactly its URL (issue 18); GitHub's pushes keep their HMAC.

Google's key server is ``tests.support.oidc.CertServer`` on loopback (the format of
https://www.googleapis.com/oauth2/v1/certs), and the tokens are signed with its test key by google-auth.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from function.github.webhook import signature
from function.index.publish import read_index
from function.storage.local import LocalStore
from tests.support import scenario
from tests.support.functions import CommitsServer, FunctionServer, TarballServer
from tests.support.manifests import digest, write_project
from tests.support.oidc import GOOGLE_KEY, QUEUE, SCHEDULER, CertServer, Signer, bearer
from tests.support.rigs import NEW_SHA, OLD_SHA, SECRET, TIMES

AUDIENCE = "https://us-central1-test-project.cloudfunctions.net/auditor-sync"
FORGER = Signer(GOOGLE_KEY.kid)  # another key under the id of Google's


@dataclass
class Sync:
    function: FunctionServer
    tarballs: TarballServer
    commits: CommitsServer
    certs: CertServer
    store: LocalStore

    def post(self, body: bytes, headers: dict[str, str]) -> requests.Response:
        return requests.post(self.function.url, data=body, headers=headers, timeout=60)

    def sync_lines(self) -> list[dict[str, Any]]:
        return [line for line in self.function.lines() if "sync" in line]

    def warnings(self) -> list[str]:
        """The WARNING lines of its log (stderr: where logging goes outside the cloud)."""
        lines = [json.loads(line) for line in self.function.log.read_text().splitlines() if line.startswith("{")]
        return [line["message"] for line in lines if line.get("severity") == "WARNING"]


@pytest.fixture(scope="module")
def sync(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sync]:
    work = tmp_path_factory.mktemp("oidc")
    with TarballServer() as tarballs, CommitsServer() as commits, CertServer(GOOGLE_KEY) as certs:
        for sha, release in ((OLD_SHA, 1), (NEW_SHA, 2)):
            images = [{"name": "pause", "dmap": {digest(f"pause-{m}"): [f"3.{m}"] for m in range(release)}}]
            # The tarball server stands for the registries too: it knows no digest (404), so rebuilds stay local.
            registry = tarballs.url.removeprefix("http://")
            write_project(work / sha, "p", destinations=[f"{registry}/images"], images=images, staging=f"{registry}/p")
            tarballs.files[f"{sha}.tar.gz"] = scenario.tarball(work / sha, sha, "registry.k8s.io")
        env = {
            "AUDITOR_INDEX_URI": str(work / "index.json"),
            "AUDITOR_MANIFESTS": f"{tarballs.url}/{{sha}}.tar.gz",
            "AUDITOR_HEAD_URL": commits.template,
            "AUDITOR_WEBHOOK_SECRET": SECRET,
            "AUDITOR_OIDC_AUDIENCE": AUDIENCE,
            "AUDITOR_OIDC_INVOKERS": f"{SCHEDULER},{QUEUE}",
            "AUDITOR_OIDC_CERTS_URL": certs.certs_url,
        }
        with FunctionServer("sync_index", "http", env, work) as function:
            yield Sync(function, tarballs, commits, certs, LocalStore(work / "index.json"))


def envelope(sha: str) -> bytes:
    data = json.dumps({"commit": sha, "committed_at": TIMES[sha], "reason": "push"}).encode()
    message = {"data": base64.b64encode(data).decode(), "messageId": "11"}
    return json.dumps({"subscription": "projects/test-project/subscriptions/sync", "message": message}).encode()


def test_a_resync_with_the_schedulers_token_rebuilds_the_head(sync: Sync) -> None:
    sync.commits.heads["main"] = (OLD_SHA, TIMES[OLD_SHA])
    response = sync.post(b"{}", {"Authorization": bearer(SCHEDULER, AUDIENCE), "Content-Type": "application/json"})
    assert (response.status_code, response.json()["status"], response.json()["commit"]) == (200, "published", OLD_SHA)
    loaded = read_index(sync.store)
    assert loaded is not None and loaded.source.commit == OLD_SHA


def test_a_queued_rebuild_with_the_queues_token_is_rebuilt(sync: Sync) -> None:
    response = sync.post(envelope(NEW_SHA), {"Authorization": bearer(QUEUE, AUDIENCE)})
    assert (response.status_code, response.json()["status"], response.json()["commit"]) == (200, "published", NEW_SHA)
    assert sync.sync_lines()[-1]["sync"] == "published"


REFUSALS = {
    "missing header": None,
    "not a bearer token": "Basic " + base64.b64encode(b"scheduler:password").decode(),
    "webhook signature instead": signature(SECRET, b"{}"),
    "wrong audience": bearer(SCHEDULER, "https://us-central1-test-project.cloudfunctions.net/auditor-rebuild"),
    "audience with a path": bearer(SCHEDULER, AUDIENCE + "/"),
    "wrong issuer": bearer(SCHEDULER, AUDIENCE, issuer="https://issuer.example"),
    "email not an invoker": bearer("someone@test-project.iam.gserviceaccount.com", AUDIENCE),
    "unverified email": bearer(SCHEDULER, AUDIENCE, email_verified=False),
    "expired": bearer(SCHEDULER, AUDIENCE, issued_ago=7200.0),
    "bad signature": "Bearer " + FORGER.token(SCHEDULER, AUDIENCE),
    "not a JWT": "Bearer not.a.token",
}


@pytest.mark.parametrize("authorization", REFUSALS.values(), ids=REFUSALS.keys())
@pytest.mark.parametrize("body", [b"{}", envelope(NEW_SHA)], ids=["resync", "queued rebuild"])
def test_without_an_invokers_token_nothing_is_rebuilt_and_nothing_said_why(
    sync: Sync, authorization: str | None, body: bytes
) -> None:
    sync.commits.heads["main"] = (NEW_SHA, TIMES[NEW_SHA])
    before = (len(sync.tarballs.requests), len(sync.commits.requests), sync.store.generation(), len(sync.sync_lines()))
    warnings = len(sync.warnings())
    response = sync.post(body, {"Authorization": authorization} if authorization else {})
    assert (response.status_code, response.json()) == (401, {"status": "refused", "reason": "unauthenticated"})
    # Not pinned, not downloaded, not published, not even a sync line.
    after = (len(sync.tarballs.requests), len(sync.commits.requests), sync.store.generation(), len(sync.sync_lines()))
    assert after == before
    # Why, for the operator only.
    assert [line for line in sync.warnings()[warnings:] if "sync request refused: " in line]


def test_a_push_needs_githubs_signature_whatever_token_it_carries(sync: Sync) -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": NEW_SHA, "commits": []}).encode()
    headers = {"X-GitHub-Event": "push", "Authorization": bearer(SCHEDULER, AUDIENCE)}
    assert sync.post(body, headers).status_code == 401
    headers["X-Hub-Signature-256"] = signature(SECRET, body)
    assert sync.post(body, headers).json() == {"status": "ignored", "reason": "the push touches no manifest"}


def test_a_resync_signed_with_the_webhook_secret_still_rebuilds_the_head(sync: Sync) -> None:
    # The contract's AUDITOR_WEBHOOK_SECRET: a request with a valid X-Hub-Signature-256 is let in, so an
    # operator can resync by hand without an invoker's token; a wrong one is refused.
    sync.commits.heads["main"] = (NEW_SHA, TIMES[NEW_SHA])
    refused = sync.post(b"{}", {"X-Hub-Signature-256": signature("not-the-secret", b"{}")})
    assert refused.status_code == 401
    response = sync.post(b"{}", {"X-Hub-Signature-256": signature(SECRET, b"{}")})
    assert (response.status_code, response.json()["commit"]) == (200, NEW_SHA)
    assert response.json()["status"] in ("published", "unchanged")  # the module's earlier tests may have published it
    loaded = read_index(sync.store)
    assert loaded is not None and loaded.source.commit == NEW_SHA


def test_a_queued_rebuild_signed_with_the_webhook_secret_is_not_let_in(sync: Sync) -> None:
    # A rebuild request names its commit: only the queue's token may carry one, never a replayable signature.
    body = envelope(OLD_SHA)
    before = sync.store.generation()
    response = sync.post(body, {"X-Hub-Signature-256": signature(SECRET, body)})
    assert sync.store.generation() == before
    assert response.status_code in (200, 202) and response.json().get("commit") != OLD_SHA
