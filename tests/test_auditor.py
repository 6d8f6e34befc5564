"""The decision from the index alone: every verdict of the contract, and its verdict line."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from function.auditor import Auditor
from function.cloudlog import structured_lines
from function.events import parse_payload
from function.index import manifests
from function.index.digests import DigestIndex, Source
from function.index.source import FixedIndex
from function.settings import SettingError
from function.verdict import ERROR_EVENT_TYPE, Kind, Verdict, emit, verdict_logger
from tests.support.manifests import digest, snapshot, write_project
from tests.support.sources import Refreshing

AR = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images"
PAUSE = f"{AR}/pause"
LOGGER = f"{AR}/logger"
LIST, SINGLE, CHILD1, CHILD2 = digest("pause-list"), digest("pause-3.8"), digest("pause-amd64"), digest("pause-arm64")
LOGGER_LIST, LOGGER_AMD, LOGGER_ARM = digest("logger-list"), digest("logger-amd"), digest("logger-arm")


def build(root: Path, extra: dict[str, list[str]] | None = None) -> DigestIndex:
    images: list[dict[str, Any]] = [
        {"name": "pause", "dmap": {LIST: ["3.9"], SINGLE: ["3.8"]}},
        {"name": "logger", "dmap": {LOGGER_LIST: ["v1"]}},
        # The seed's case: a child also listed under another name, pushed under the parent's name.
        {"name": "logger-amd", "dmap": {LOGGER_AMD: ["v1-amd64"]}},
    ]
    for name, digests in (extra or {}).items():
        images.append({"name": name, "dmap": {d: ["new"] for d in digests}})
    write_project(root, "p", destinations=[AR, AR.replace("us-central1", "europe-west1")], images=images)
    index = DigestIndex.build(manifests.load(root), source=Source(commit="c1"))
    return index.with_resolutions({LIST: [CHILD1, CHILD2], SINGLE: [], LOGGER_LIST: [LOGGER_AMD, LOGGER_ARM]})


@pytest.fixture
def auditor(tmp_path: Path) -> Auditor:
    return Auditor(FixedIndex(build(tmp_path)))


def event(action: str = "INSERT", path: str = PAUSE, d: str | None = None, tag: str | None = None) -> str:
    payload: dict[str, str] = {"action": action}
    if d:
        payload["digest"] = f"{path}@{d}"
    if tag:
        payload["tag"] = f"{path}:{tag}"
    return json.dumps(payload)


def sig(d: str, kind: str = "sig") -> str:
    return f"sha256-{d.removeprefix('sha256:')}.{kind}"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (event(d=LIST, tag="3.9"), ("VERIFIED", "listed", None, None)),
        (event(d=LIST), ("VERIFIED", "listed", None, None)),
        (event(d=SINGLE, tag="3.8"), ("VERIFIED", "listed", None, None)),
        (event(d=CHILD1), ("VERIFIED", "child", None, LIST)),
        (event(d=CHILD2, tag="3.9"), ("VERIFIED", "child", None, LIST)),
        (event(path=LOGGER, d=LOGGER_AMD), ("VERIFIED", "child", None, LOGGER_LIST)),
        # A signature's content decides, and without a registry it cannot be read: never VERIFIED unseen.
        (event(d=digest("x"), tag=sig(LIST)), ("RETRY", None, "no registry client", None)),
        (event(d=digest("x"), tag=sig(CHILD1, "att")), ("RETRY", None, "no registry client", None)),
        (event(tag=sig(SINGLE, "sbom")), ("RETRY", None, "no registry client", None)),
        (event(d=digest("x"), tag=sig(LIST, "")[:-1]), ("RETRY", None, "no registry client", None)),
        (event(d=digest("x"), tag=sig(digest("nope"), "")[:-1]), ("REJECTED", None, "orphan_artifact", None)),
        (event(d=digest("x"), tag="sha256-" + "A" * 64), ("REJECTED", None, "unknown_digest", None)),
        (event(d=LIST, tag="3.8"), ("REJECTED", None, "tag_mismatch", None)),
        (event(d=CHILD1, tag="latest"), ("REJECTED", None, "tag_mismatch", None)),
        (event(d=digest("nope")), ("REJECTED", None, "unknown_digest", None)),
        (event(d=digest("nope"), tag="3.9"), ("REJECTED", None, "unknown_digest", None)),
        (event(path=LOGGER, d=CHILD1), ("REJECTED", None, "unknown_digest", None)),
        (event(d=digest("x"), tag=sig(digest("nope"))), ("REJECTED", None, "orphan_artifact", None)),
        (event(tag=sig(LOGGER_LIST)), ("REJECTED", None, "orphan_artifact", None)),
        (event(path=f"{AR}/pauze", d=LIST), ("REJECTED", None, "unknown_image", None)),
        (event("DELETE", d=LIST, tag="3.9"), ("REJECTED", None, "deletion", None)),
        (event("DELETE", path=f"{AR}/pauze", tag="x"), ("REJECTED", None, "deletion", None)),
        (event(path="gcr.io/someone/else", d=LIST), ("IGNORED", None, "not_audited", None)),
        (event(path="127.0.0.1:5000/pause", d=LIST), ("IGNORED", None, "not_audited", None)),
    ],
)
def test_verdicts_from_the_index(auditor: Auditor, payload: str, expected: tuple[Any, ...]) -> None:
    verdict = auditor.audit_payload(payload)
    assert (verdict.verdict, verdict.basis, verdict.reason, verdict.parent) == expected
    assert verdict.registry_calls == 0
    parsed = parse_payload(payload)
    assert (verdict.action, verdict.path, verdict.digest, verdict.tag) == (
        parsed.action,
        parsed.path,
        parsed.digest,
        parsed.tag,
    )
    if verdict.verdict == "VERIFIED":
        assert verdict.image in {"pause", "logger"}


FROZEN = (
    "gcr.io/k8s-artifacts-prod",
    " EU.GCR.IO/k8s-artifacts-prod/ ",
    "us-central1-docker.pkg.dev/k8s-artifacts-prod/images/pause",
)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (event(path="gcr.io/k8s-artifacts-prod/pause", d=LIST), ("REJECTED", "frozen", None)),
        (event("DELETE", path="gcr.io/k8s-artifacts-prod/a/b", tag="1.0"), ("REJECTED", "frozen", None)),
        (event(path="eu.gcr.io/k8s-artifacts-prod/pause", tag="3.9"), ("REJECTED", "frozen", None)),
        (event(path="EU.GCR.IO:443/k8s-artifacts-prod/x", d=LIST), ("REJECTED", "frozen", None)),
        # Frozen wins over every other rule, even a listed digest at its promoted path.
        (event(d=LIST, tag="3.9"), ("REJECTED", "frozen", "pause")),
        # Prefixes end at a path component.
        (event(path="gcr.io/k8s-artifacts-prod2/pause", d=LIST), ("IGNORED", "not_audited", None)),
        (event(path="asia.gcr.io/k8s-artifacts-prod/pause", d=LIST), ("IGNORED", "not_audited", None)),
        (event(path=f"{PAUSE}-extra", d=digest("x")), ("REJECTED", "unknown_image", None)),
    ],
)
def test_frozen_prefixes_reject_any_change_beneath_them(
    tmp_path: Path, payload: str, expected: tuple[Any, ...]
) -> None:
    auditor = Auditor(FixedIndex(build(tmp_path)), frozen_prefixes=FROZEN)
    verdict = auditor.audit_payload(payload)
    assert (verdict.verdict, verdict.reason, verdict.image, verdict.registry_calls) == (*expected, 0)


@pytest.mark.parametrize("prefix", ["", "gcr.io/Upper", "no-dot/x", "gcr.io/a b"])
def test_a_frozen_prefix_that_is_no_registry_path_is_refused(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(ValueError):
        Auditor(FixedIndex(build(tmp_path)), frozen_prefixes=[prefix])


def test_malformed_and_unresolvable_events(auditor: Auditor) -> None:
    malformed = auditor.audit_payload('{"action": "INSERT", "digest": "gcr.io/a@sha256:xyz"}')
    assert (malformed.verdict, malformed.action, malformed.path) == ("MALFORMED", "INSERT", None)
    assert "not a digest" in (malformed.reason or "")
    # A tag alone names no content: without a registry the decision stays open, never an alarm.
    open_ = auditor.audit_payload(event(tag="3.9"))
    assert (open_.verdict, open_.path, open_.tag) == ("RETRY", PAUSE, "3.9")


def test_a_newer_index_is_consulted_before_rejecting(tmp_path: Path) -> None:
    fresh_digest = digest("merged-minutes-ago")
    newer = build(tmp_path / "new", {"fresh": [fresh_digest]})
    asked: list[int] = []

    def refresh() -> DigestIndex | None:
        asked.append(1)
        return newer if len(asked) == 1 else None

    source = Refreshing(build(tmp_path / "old"), refresh)
    auditor = Auditor(source)
    assert auditor.audit_payload(event(d=LIST)).verdict == "VERIFIED"
    assert asked == []  # a verified event never looks for a newer index
    verdict = auditor.audit_payload(event(path=f"{AR}/fresh", d=fresh_digest, tag="new"))
    assert (verdict.verdict, verdict.basis, verdict.image) == ("VERIFIED", "listed", "fresh")
    assert source.index is newer
    assert auditor.audit_payload(event(path=f"{AR}/fresh", d=digest("other"))).reason == "unknown_digest"
    assert len(asked) == 2


def read_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_verdict_lines_follow_the_contract(auditor: Auditor) -> None:
    stream = io.StringIO()
    logger = verdict_logger(stream)
    for payload in (event(d=CHILD1), event(d=digest("nope")), "garbage", event(tag="3.9")):
        emit(logger, auditor.audit_payload(payload), message_id="m-1")
    lines = [line for line in read_lines(stream) if "verdict" in line]
    assert [line["verdict"] for line in lines] == ["VERIFIED", "REJECTED", "MALFORMED", "RETRY"]
    assert [line["severity"] for line in lines] == ["INFO", "ERROR", "ERROR", "WARNING"]
    fields = {"severity", "message", "verdict", "basis", "reason", "action", "path", "digest", "tag", "image"}
    for line in lines:
        assert fields | {"parent", "registry_calls"} <= line.keys()
        assert line["message_id"] == "m-1"
        assert isinstance(line["message"], str) and line["message"]
        assert ("@type" in line) == (line["verdict"] in {"REJECTED", "MALFORMED"})
    assert lines[0]["parent"] == LIST and lines[0]["basis"] == "child" and lines[0]["registry_calls"] == 0
    assert lines[1]["@type"] == ERROR_EVENT_TYPE
    assert lines[2]["path"] is None and lines[2]["digest"] is None


def test_severity_follows_the_verdict() -> None:
    assert [
        Verdict(Kind(name), "m").severity for name in ("VERIFIED", "IGNORED", "RETRY", "REJECTED", "MALFORMED")
    ] == [
        20,
        20,
        30,
        40,
        40,
    ]


@pytest.mark.realdata
def test_thousands_of_real_events() -> None:
    index = DigestIndex.build(manifests.load(snapshot()), source=Source())
    auditor = Auditor(FixedIndex(index))
    rng = random.Random(7)
    project = index.projects
    entries = [
        (dest, image.name, d, sorted(tags))
        for p in project.values()
        for dest in p.destinations
        for image in p.images.values()
        for d, tags in image.digests.items()
    ]
    sample = rng.sample(entries, 3000)
    counts: dict[tuple[str, str | None], int] = {}
    for dest, name, d, tags in sample:
        path = f"{dest}/{name}"
        tag = rng.choice(tags) if tags else None
        outcomes = [
            ("VERIFIED", "listed", event(path=path, d=d, tag=tag)),
            ("REJECTED", "unknown_digest", event(path=path, d=f"sha256:{rng.getrandbits(256):064x}", tag=tag)),
            ("REJECTED", "tag_mismatch", event(path=path, d=d, tag="not-a-promoted-tag")),
            ("REJECTED", "unknown_image", event(path=f"{dest}/{name}-mutated", d=d)),
            ("REJECTED", "deletion", event("DELETE", path=path, d=d)),
            ("IGNORED", "not_audited", event(path=f"gcr.io/k8s-staging-elsewhere/{name}", d=d)),
        ]
        for expected_verdict, word, payload in outcomes:
            verdict = auditor.audit_payload(payload)
            assert (verdict.verdict, verdict.basis or verdict.reason) == (expected_verdict, word), payload
            assert verdict.registry_calls == 0
            counts[(expected_verdict, word)] = counts.get((expected_verdict, word), 0) + 1
    assert counts[("VERIFIED", "listed")] == 3000


def test_verdict_lines_carry_the_requests_trace(auditor: Auditor, monkeypatch: pytest.MonkeyPatch) -> None:
    import flask

    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "auditor-project")
    stream = io.StringIO()
    logger = verdict_logger(stream, labels={"function": "audit"}, lines=structured_lines)
    with flask.Flask("t").test_request_context(headers={"X-Cloud-Trace-Context": "0af7651916cd43dd/1;o=1"}):
        emit(logger, auditor.audit_payload(event(d=LIST)))
    line = next(line for line in read_lines(stream) if "verdict" in line)
    assert line["logging.googleapis.com/trace"] == "projects/auditor-project/traces/0af7651916cd43dd"
    assert line["logging.googleapis.com/labels"]["function"] == "audit"


def test_the_service_reads_frozen_prefixes_and_its_deadline_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from function.services.audit import AuditService

    (tmp_path / "index.json").write_bytes(build(tmp_path / "m").to_json())
    monkeypatch.setenv("AUDITOR_INDEX_URI", str(tmp_path / "index.json"))
    monkeypatch.setenv("AUDITOR_FROZEN_PREFIXES", " gcr.io/k8s-artifacts-prod , ,EU.gcr.io/k8s-artifacts-prod")
    monkeypatch.setenv("AUDITOR_DEADLINE_SECONDS", "7.5")
    service = AuditService.from_environment()
    assert (service.frozen_prefixes, service.deadline_seconds) == (
        ("gcr.io/k8s-artifacts-prod", "eu.gcr.io/k8s-artifacts-prod"),
        7.5,
    )
    verdict = service.handle({"message": {"data": _b64(event(path="eu.gcr.io/k8s-artifacts-prod/x", d=LIST))}})
    assert (verdict.verdict, verdict.reason) == ("REJECTED", "frozen")
    # No index is needed for that: a frozen registry must never change, whatever the manifests say.
    monkeypatch.setenv("AUDITOR_INDEX_URI", str(tmp_path / "nothing-here.json"))
    without = AuditService.from_environment()
    verdict = without.handle({"message": {"data": _b64(event("DELETE", path="gcr.io/k8s-artifacts-prod/x", d=LIST))}})
    assert (verdict.verdict, verdict.reason, verdict.index) == ("REJECTED", "frozen", None)
    monkeypatch.delenv("AUDITOR_FROZEN_PREFIXES")
    monkeypatch.delenv("AUDITOR_DEADLINE_SECONDS")
    assert (AuditService.from_environment().frozen_prefixes, AuditService.from_environment().deadline_seconds) == (
        (),
        50.0,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AUDITOR_DEADLINE_SECONDS", "0", "positive number of seconds"),
        ("AUDITOR_DEADLINE_SECONDS", "soon", "positive number of seconds"),
        ("AUDITOR_DEADLINE_SECONDS", "inf", "positive number of seconds"),
        ("AUDITOR_FROZEN_PREFIXES", "gcr.io/k8s-artifacts-prod,not a path", "not a registry path prefix"),
    ],
)
def test_bad_settings_say_what_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    from function.services.audit import AuditService

    monkeypatch.setenv("AUDITOR_INDEX_URI", str(tmp_path / "index.json"))
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError, match=message):
        AuditService.from_environment()


def _b64(payload: str) -> str:
    import base64

    return base64.b64encode(payload.encode()).decode()


def test_a_silent_storage_service_still_gets_a_verdict_line_within_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket
    import time

    from function.services.audit import AuditService, RetryLater

    with socket.socket() as silent:
        # Connections complete in the kernel's backlog and are never answered.
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv("AUDITOR_INDEX_URI", "gs://bucket/index.json.gz")
        monkeypatch.setenv("AUDITOR_DEADLINE_SECONDS", "3")
        service = AuditService.from_environment()
        stream = io.StringIO()
        service.logger = verdict_logger(stream)
        started = time.monotonic()
        with pytest.raises(RetryLater):
            service.handle({"message": {"data": _b64(event(d=LIST))}})
        assert time.monotonic() - started < 3.5
    lines = [line for line in read_lines(stream) if "verdict" in line]
    assert [(line["verdict"], line["reason"]) for line in lines] == [("RETRY", "index unavailable")]
