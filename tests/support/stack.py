"""The whole auditor on loopback: registry behind a counting proxy, fake-gcs-server, the Pub/Sub
emulator pushing topic ``gcr`` to ``functions-framework --target audit``, two ``sync_index`` instances,
a server of commit tarballs and Google's key server for the ID tokens of the resync and the queue's
pushes. Shared by the end-to-end tests and the demo."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from function.github.webhook import signature
from function.index.digests import DigestIndex
from function.storage.base import IndexStore
from function.storage.uri import open_store
from tests.support import registry as reg
from tests.support import scenario
from tests.support.functions import CommitsServer, FunctionServer, TarballServer
from tests.support.gcs import GcsEmulator
from tests.support.oidc import GOOGLE_KEY, QUEUE, SCHEDULER, SYNC_URL, AuthenticatedPush, CertServer, bearer
from tests.support.proxy import RegistryProxy
from tests.support.pubsub import PubSubEmulator

# A legacy registry that must never change (as *gcr.io/k8s-artifacts-prod is in production).
FROZEN = "127.0.0.1:1/k8s-artifacts-prod"
SECRET = "webhook-secret-for-tests"
SUBDIR = "registry.k8s.io"
COMMIT_TIMES = {"commit-1": "2026-11-01T10:00:00Z", "commit-2": "2026-11-02T10:00:00Z"}


def sha(commit: str) -> str:
    """The commit SHA that stands for a scenario's commit name (a push names 40 lowercase hex digits)."""
    return hashlib.sha1(commit.encode(), usedforsecurity=False).hexdigest()


@dataclass
class Stack:
    promotion: scenario.Promotion
    proxy: RegistryProxy
    store: IndexStore
    tarballs: TarballServer
    audit: FunctionServer
    syncs: list[FunctionServer]
    pubsub: PubSubEmulator
    topic: str
    work: Path
    commits: CommitsServer

    def webhook(
        self, commit: str, *, secret: str = SECRET, sync: int = 0, committed_at: str | None = None
    ) -> requests.Response:
        body = json.dumps(
            {
                "ref": "refs/heads/main",
                "after": sha(commit),
                "head_commit": {"timestamp": committed_at or COMMIT_TIMES.get(commit, "2026-11-03T10:00:00Z")},
                "commits": [{"added": [], "removed": [], "modified": [f"{SUBDIR}/images/demo/images.yaml"]}],
            }
        ).encode()
        headers = {
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": signature(secret, body),
            "Content-Type": "application/json",
        }
        return requests.post(self.syncs[sync].url, data=body, headers=headers, timeout=120)

    def resync(self, *, sync: int = 0) -> requests.Response:
        """What Cloud Scheduler sends: no ``X-GitHub-Event``, an ID token of its account."""
        headers = {"Authorization": bearer(SCHEDULER, SYNC_URL), "Content-Type": "application/json"}
        return requests.post(self.syncs[sync].url, data=b"{}", headers=headers, timeout=120)

    def add_commit(self, commit: str, root: Path) -> str:
        """Serve the manifests at ``root`` as the tarball of ``commit``; returns its SHA."""
        self.tarballs.files[f"{sha(commit)}.tar.gz"] = scenario.tarball(root, sha(commit), SUBDIR)
        return sha(commit)

    def publish(self, payload: dict[str, str] | str) -> str:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        return self.pubsub.publish(self.topic, data.encode())

    def index(self) -> tuple[DigestIndex, int]:
        stored = self.store.read()
        assert stored is not None
        return DigestIndex.from_json(stored.data), stored.generation

    def verdicts_for(self, message_ids: list[str], timeout: float = 60.0) -> dict[str, dict[str, Any]]:
        """The last verdict line of each message (a redelivered message has several)."""
        deadline = time.monotonic() + timeout
        while True:
            found = {
                line["message_id"]: line for line in self.audit.verdicts() if line.get("message_id") in message_ids
            }
            if len(found) == len(message_ids) or time.monotonic() > deadline:
                assert len(found) == len(message_ids), f"verdicts for {len(found)} of {len(message_ids)} messages"
                return found
            time.sleep(0.2)

    def lines_of(
        self, message_id: str, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """Every verdict line of one message (redeliveries included), once ``until`` holds for them."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.audit.verdicts() if line.get("message_id") == message_id]
            if until(lines):
                return lines
            assert time.monotonic() < deadline, f"message {message_id}: {len(lines)} lines after {timeout}s"
            time.sleep(0.2)

    def outage(self, payload: dict[str, str]) -> list[dict[str, Any]]:
        """Publish ``payload`` while the registry fails, heal it after the first RETRY, and return every
        verdict line of the message until it is decided."""
        self.proxy.fail_always(503)
        message_id = self.publish(payload)
        self.lines_of(message_id, bool)
        self.proxy.heal()
        return self.lines_of(message_id, lambda lines: lines[-1]["verdict"] != "RETRY")


@contextmanager
def running(
    registry: reg.RegistryServer,
    gcs: GcsEmulator,
    pubsub: PubSubEmulator,
    work: Path,
    *,
    env: dict[str, str] | None = None,
    queued_syncs: int = 0,
) -> Iterator[Stack]:
    """The whole stack; ``env`` adds to every function's environment, and ``queued_syncs`` more
    ``sync_index`` instances run with ``AUDITOR_SYNC_QUEUE`` (a topic pushing back to them)."""
    bucket = gcs.new_bucket()
    saved = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = gcs.url
    try:
        with (
            RegistryProxy(registry.url) as proxy,
            TarballServer() as tarballs,
            CommitsServer() as commits,
            CertServer(GOOGLE_KEY) as certs,
        ):
            promotion = scenario.promote(proxy.host, via=registry.host)
            for commit in promotion.commits:
                root = promotion.write_manifests(commit, work / commit)
                tarballs.files[f"{sha(commit)}.tar.gz"] = scenario.tarball(root, sha(commit), SUBDIR)
            broken = work / "broken"
            promotion.write_manifests("commit-2", broken)
            (broken / "images" / scenario.PROJECT / "images.yaml").write_text("- name: pause\n  dmap: {\n")
            tarballs.files[f"{sha('broken')}.tar.gz"] = scenario.tarball(broken, sha("broken"), SUBDIR)
            common = {
                "AUDITOR_INDEX_URI": f"gs://{bucket}/index.json.gz",
                "STORAGE_EMULATOR_HOST": gcs.url,
                "AUDITOR_MANIFESTS": f"{tarballs.url}/{{sha}}.tar.gz",
                "AUDITOR_MANIFESTS_SUBDIR": SUBDIR,
                "AUDITOR_WEBHOOK_SECRET": SECRET,
                "AUDITOR_HEAD_URL": commits.template,
                "AUDITOR_FROZEN_PREFIXES": FROZEN,
                "AUDITOR_OIDC_AUDIENCE": SYNC_URL,
                "AUDITOR_OIDC_INVOKERS": f"{SCHEDULER},{QUEUE}",
                "AUDITOR_OIDC_CERTS_URL": certs.certs_url,
                **(env or {}),
            }
            sync_topic = pubsub.create_topic(f"sync-{bucket.removeprefix('test-')}") if queued_syncs else ""
            queue_env = {**common, **pubsub.env, "AUDITOR_SYNC_QUEUE": sync_topic}
            with contextlib.ExitStack() as servers:
                audit = servers.enter_context(FunctionServer("audit", "cloudevent", common, work))
                syncs = [
                    servers.enter_context(FunctionServer("sync_index", "http", common, work, name=f"sync-{n}"))
                    for n in "ab"
                ]
                syncs += [
                    servers.enter_context(FunctionServer("sync_index", "http", queue_env, work, name=f"sync-q{n}"))
                    for n in range(queued_syncs)
                ]
                # One "gcr" topic per stack: several stacks may share one emulator.
                topic = pubsub.create_topic(f"gcr-{bucket.removeprefix('test-')}")
                subscriptions = [pubsub.create_push_subscription(topic, audit.url, ack_deadline_seconds=30)]
                # Each push with the queue account's ID token, as Terraform's push subscription sends it.
                pushers = [
                    servers.enter_context(AuthenticatedPush(sync.url, GOOGLE_KEY, QUEUE, SYNC_URL))
                    for sync in syncs[2:]
                ]
                subscriptions += [
                    # As Terraform sets it: the rebuild may take minutes before it is acknowledged.
                    pubsub.create_push_subscription(sync_topic, pusher.url, ack_deadline_seconds=600)
                    for pusher in pushers
                ]
                try:
                    yield Stack(
                        promotion,
                        proxy,
                        open_store(common["AUDITOR_INDEX_URI"]),
                        tarballs,
                        audit,
                        syncs,
                        pubsub,
                        topic,
                        work,
                        commits,
                    )
                finally:
                    # Before the endpoints stop, or the emulator keeps pushing to closed ports.
                    for subscription in subscriptions:
                        pubsub.delete_subscription(subscription)
    finally:
        if saved is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = saved
