"""The whole auditor on loopback: registry behind a counting proxy, fake-gcs-server, the Pub/Sub
emulator pushing topic ``gcr`` to ``functions-framework --target audit``, two ``sync_index`` instances
and a server of commit tarballs. Shared by the end-to-end tests and the demo."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from function.index.digests import DigestIndex
from function.index.store import IndexStore, open_store
from function.services.webhook import signature
from tests.support import registry as reg
from tests.support import scenario
from tests.support.functions import FunctionServer, TarballServer
from tests.support.gcs import GcsEmulator
from tests.support.proxy import RegistryProxy
from tests.support.pubsub import PubSubEmulator

# A legacy registry that must never change (as *gcr.io/k8s-artifacts-prod is in production).
FROZEN = "127.0.0.1:1/k8s-artifacts-prod"
SECRET = "webhook-secret-for-tests"
SUBDIR = "registry.k8s.io"
COMMIT_TIMES = {"commit-1": "2026-11-01T10:00:00Z", "commit-2": "2026-11-02T10:00:00Z"}


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

    def webhook(
        self, commit: str, *, secret: str = SECRET, sync: int = 0, committed_at: str | None = None
    ) -> requests.Response:
        body = json.dumps(
            {
                "ref": "refs/heads/main",
                "after": commit,
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
def running(registry: reg.RegistryServer, gcs: GcsEmulator, pubsub: PubSubEmulator, work: Path) -> Iterator[Stack]:
    bucket = gcs.new_bucket()
    saved = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = gcs.url
    try:
        with RegistryProxy(registry.url) as proxy, TarballServer() as tarballs:
            promotion = scenario.promote(proxy.host, via=registry.host)
            for commit in promotion.commits:
                root = promotion.write_manifests(commit, work / commit)
                tarballs.files[f"{commit}.tar.gz"] = scenario.tarball(root, commit, SUBDIR)
            broken = work / "broken"
            promotion.write_manifests("commit-2", broken)
            (broken / "images" / scenario.PROJECT / "images.yaml").write_text("- name: pause\n  dmap: {\n")
            tarballs.files["broken.tar.gz"] = scenario.tarball(broken, "broken", SUBDIR)
            env = {
                "AUDITOR_INDEX_URI": f"gs://{bucket}/index.json.gz",
                "STORAGE_EMULATOR_HOST": gcs.url,
                "AUDITOR_MANIFESTS": f"{tarballs.url}/{{sha}}.tar.gz",
                "AUDITOR_MANIFESTS_SUBDIR": SUBDIR,
                "AUDITOR_WEBHOOK_SECRET": SECRET,
                "AUDITOR_FROZEN_PREFIXES": FROZEN,
            }
            with (
                FunctionServer("audit", "cloudevent", env, work) as audit,
                FunctionServer("sync_index", "http", env, work, name="sync-a") as sync_a,
                FunctionServer("sync_index", "http", env, work, name="sync-b") as sync_b,
            ):
                topic = pubsub.create_topic("gcr")
                subscription = pubsub.create_push_subscription(topic, audit.url, ack_deadline_seconds=30)
                try:
                    yield Stack(
                        promotion,
                        proxy,
                        open_store(env["AUDITOR_INDEX_URI"]),
                        tarballs,
                        audit,
                        [sync_a, sync_b],
                        pubsub,
                        topic,
                        work,
                    )
                finally:
                    # Before the endpoint stops, or the emulator keeps pushing to a closed port.
                    pubsub.delete_subscription(subscription)
    finally:
        if saved is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = saved
