"""The ``audit`` function as the cloud calls it: a Pub/Sub CloudEvent (binary and structured mode), on the
real functions-framework; the plain Pub/Sub push body is covered by the whole-stack tests."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from function.index.digests import Source
from function.index.publish import rebuild
from function.storage.uri import open_store
from tests.support.functions import FunctionServer
from tests.support.manifests import digest, write_project

# Nothing listens on port 1: a question to this registry is a fault, answered at once.
DESTINATION = "127.0.0.1:1/images"
PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
SOURCE = "//pubsub.googleapis.com/projects/p/topics/gcr"


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FunctionServer]:
    work = tmp_path_factory.mktemp("cloudevent")
    write_project(work / "m", "p", destinations=[DESTINATION], images=[{"name": "pause", "dmap": {digest("a"): ["1"]}}])
    index = work / "index.json"
    rebuild(work / "m", open_store(str(index)), source=Source(None, None))
    env = {"AUDITOR_INDEX_URI": str(index), "AUDITOR_DEADLINE_SECONDS": "5"}
    with FunctionServer("audit", "cloudevent", env, work) as server:
        yield server


def message(payload: dict[str, Any] | bytes, message_id: str) -> dict[str, Any]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "messageId": message_id,
            "publishTime": "2026-01-01T00:00:00Z",
        },
        "subscription": "projects/p/subscriptions/gcr-audit",
    }


def binary(url: str, body: dict[str, Any], event_id: str) -> requests.Response:
    headers = {
        "ce-specversion": "1.0",
        "ce-type": PUBSUB_TYPE,
        "ce-source": SOURCE,
        "ce-id": event_id,
        "Content-Type": "application/json",
    }
    return requests.post(url, data=json.dumps(body), headers=headers, timeout=30)


def structured(url: str, body: dict[str, Any], event_id: str) -> requests.Response:
    event = {"specversion": "1.0", "type": PUBSUB_TYPE, "source": SOURCE, "id": event_id, "data": body}
    headers = {"Content-Type": "application/cloudevents+json"}
    return requests.post(url, data=json.dumps(event), headers=headers, timeout=30)


def verdict_of(server: FunctionServer, message_id: str) -> dict[str, Any]:
    lines = [line for line in server.verdicts() if line.get("message_id") == message_id]
    assert len(lines) == 1, server.verdicts()
    return lines[0]


@pytest.mark.parametrize("post", [binary, structured])
def test_a_pubsub_cloudevent_gets_its_verdict_and_only_retry_is_redelivered(audit: FunctionServer, post: Any) -> None:
    mode = post.__name__
    cases: list[tuple[dict[str, Any] | bytes, int]] = [
        ({"action": "INSERT", "digest": f"{DESTINATION}/pause@{digest('a')}", "tag": f"{DESTINATION}/pause:1"}, 200),
        ({"action": "INSERT", "digest": f"{DESTINATION}/evil@{digest('a')}"}, 200),
        (b"not json", 200),
        # A tag without a digest is resolved at the registry, which is down: the decision stays open.
        ({"action": "INSERT", "tag": f"{DESTINATION}/pause:2"}, 500),
    ]
    decided = []
    for n, (payload, status) in enumerate(cases):
        message_id = f"{mode}-{n}"
        answer = post(audit.url, message(payload, message_id), message_id)
        assert answer.status_code == status, answer.text
        line = verdict_of(audit, message_id)
        decided.append((line["verdict"], line["basis"] or line["reason"]))
    assert decided == [
        ("VERIFIED", "listed"),
        ("REJECTED", "unknown_image"),
        ("MALFORMED", decided[2][1]),
        ("RETRY", "registry unavailable"),
    ]
