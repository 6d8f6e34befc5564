"""Waits that end (issue 16): a listed digest that exists nowhere holds back only an untagged push, or a
tag it carries, and only for AUDITOR_PARENT_WAIT_SECONDS from the message's publication; the sweep never
waits."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import pytest

from function.auditor import Auditor
from function.events import unwrap_pubsub
from function.index.digests import Source
from function.index.publish import rebuild
from function.index.source import FixedIndex
from function.services.audit import AuditService, RetryLater
from function.storage.uri import open_store
from function.sweep.runner import Sweep
from function.verdict import Verdict, verdict_logger
from tests.support import registry as reg
from tests.support import scenario
from tests.support.auditing import client, load, outcome, promotion
from tests.support.proxy import RegistryProxy
from tests.test_soundness import PAUSE

__all__ = ["promotion"]  # the fixture, shared in tests/support/auditing.py

NOWHERE = "sha256:" + "f0" * 32
WAIT = 600.0


def test_publish_time_is_read_from_either_spelling() -> None:
    from function.events import publish_time

    assert publish_time("2026-01-01T00:00:00Z") == 1767225600.0
    assert publish_time("2026-01-01T00:00:00.123456789Z") == pytest.approx(1767225600.123456)
    assert publish_time("2026-01-01T01:00:00+01:00") == 1767225600.0
    assert publish_time("yesterday") is None and publish_time(None) is None
    assert publish_time("2026-01-01T00:00:00") is None  # no zone: not RFC 3339
    data = base64.b64encode(b"{}").decode()
    for key in ("publishTime", "publish_time"):
        delivery = unwrap_pubsub({"message": {"data": data, key: "2026-01-01T00:00:00Z"}})
        assert delivery.published_at == 1767225600.0
    assert unwrap_pubsub({"message": {"data": data}}).published_at is None


def published(tmp_path: Path, promotion: scenario.Promotion) -> Path:
    """The index of commit 1 with one more listed digest of pause, tagged 9.9, that exists nowhere."""
    images = {**promotion.commits["commit-1"]}
    images["pause"] = {**images["pause"], NOWHERE: ["9.9"]}
    root = tmp_path / "manifests"
    scenario.write_tree(root, promotion.host, images)
    out = tmp_path / "index.json"
    rebuild(root, open_store(str(out)), source=Source(commit="commit-1"), registry_factory=client)
    return out


class Wall:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def payload(path: str, digest: str, tag: str | None = None) -> str:
    event = {"action": "INSERT", "digest": f"{path}@{digest}"}
    if tag is not None:
        event["tag"] = f"{path}:{tag}"
    return json.dumps(event)


@pytest.mark.registry
def test_a_list_that_never_arrives_holds_back_only_what_may_be_its_child_and_not_for_ever(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    index = load(published(tmp_path, promotion))
    assert NOWHERE in index.unresolved()
    host, path = registry_proxy.host, f"{registry_proxy.host}/{PAUSE}"
    stray = reg.push_image(host, PAUSE, seed="never-a-child")
    wall = Wall()
    auditor = Auditor(FixedIndex(index), client(index.registry_hosts()), wall=wall)
    start = wall.now

    def decide(tag: str | None = None, *, at: float) -> Verdict:
        wall.now = at
        return auditor.audit_payload(payload(path, stray, tag), published_at=start)

    # Untagged, or under the tag the missing list carries: it may be a child pushed before its list.
    for tag in (None, "9.9"):
        verdict = decide(tag, at=start + 10)
        assert (verdict.verdict, verdict.reason) == ("RETRY", "parent not yet pushed"), verdict
        verdict = decide(tag, at=start + WAIT + 1)
        assert (verdict.verdict, verdict.reason) == ("REJECTED", "unknown_digest"), verdict
        assert NOWHERE in verdict.message
    # Any other tag is decided at once.
    verdict = decide("latest", at=start)
    assert (verdict.verdict, verdict.reason) == ("REJECTED", "unknown_digest"), verdict
    assert NOWHERE in verdict.message
    # The CLI's way: counted from when the payload is read.
    wall.now = start
    assert outcome(auditor.audit_payload(payload(path, stray)))[:2] == ("RETRY", "parent not yet pushed")


@pytest.mark.registry
def test_the_function_counts_from_the_publish_time(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    out = published(tmp_path, promotion)
    stray = reg.push_image(registry_proxy.host, PAUSE, seed="never-a-child-2")
    data = base64.b64encode(payload(f"{registry_proxy.host}/{PAUSE}", stray).encode()).decode()
    service = AuditService(
        open_store(str(out)), registry_factory=client, logger=verdict_logger(io.StringIO()), parent_wait_seconds=60
    )
    with pytest.raises(RetryLater, match="pushed before its list"):
        service.handle({"message": {"data": data, "publishTime": "2999-01-01T00:00:00Z"}})
    verdict = service.handle({"message": {"data": data, "publishTime": "2020-01-01T00:00:00Z"}})
    assert (verdict.verdict, verdict.reason) == ("REJECTED", "unknown_digest")


@pytest.mark.registry
def test_the_sweep_never_waits(tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy) -> None:
    index = load(published(tmp_path, promotion))
    host = registry_proxy.host
    stray = reg.push_image(host, PAUSE, tag="stray", seed="never-a-child-3")
    result = Sweep(index, registry_factory=client, sleep=lambda seconds: None).run()
    here = f"{host}/{PAUSE}"
    assert {(f.verdict, f.reason, f.tag) for f in result.findings if f.path == here and f.digest == stray} == {
        ("REJECTED", "unknown_digest", "stray")
    }
    assert {(f.verdict, f.reason, f.tag) for f in result.findings if f.path == here and f.digest == NOWHERE} == {
        ("MISSING", "absent", None),
        ("MISSING", "tag_absent", "9.9"),
    }
    assert not [u for u in result.summary.unswept if stray in json.dumps(u)]
