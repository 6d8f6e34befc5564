"""The CLI as an operator runs it: real files, exit codes and messages of the contract.

``main(argv)`` runs in-process (tests/support/cli.py); a few smoke tests run ``python -m function`` as a
real process, for what only a process shows."""

from __future__ import annotations

import gzip
import json
import logging
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from function.cli import main
from function.cli.common import PROGRESS_LOGGERS, set_log_levels
from function.index.digests import DigestIndex
from function.index.pending import PendingCommits
from function.storage.uri import open_store
from tests.support import scenario
from tests.support.cli import Ran, built_index, run_cli
from tests.support.gcs import GcsEmulator
from tests.support.manifests import digest, snapshot, write_project
from tests.support.proxy import RegistryProxy

AR = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images"
# k8s.io's commit of the snapshot (its MANIFEST.txt).
SNAPSHOT_COMMIT = "576d58a4e8553ac4ae81f3dcde680ed5ff4ebc3b"


def cli(*args: str, stdin: str = "") -> Ran:
    return run_cli(*args, stdin=stdin)


def process(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``python -m function`` in a process of its own: for the smoke tests."""
    return subprocess.run(
        [sys.executable, "-m", "function", *args], input=stdin, capture_output=True, text=True, check=False
    )


def verdicts(stdout: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [line for line in lines if "verdict" in line]


def small_index(tmp_path: Path, images: list[dict[str, object]] | None = None) -> tuple[Path, Path]:
    """A manifests folder with one project promoting to AR, and its offline index (plain JSON)."""
    root = tmp_path / "m"
    write_project(root, "p", destinations=[AR], images=images or [{"name": "a", "dmap": {digest("1"): ["v1"]}}])
    out = tmp_path / "index.json"
    build = cli("build-index", "--manifests", str(root), "--out", str(out), "--offline")
    assert build.returncode == 0, build.stderr
    return root, out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One small index for the tests that only read it."""
    return small_index(tmp_path_factory.mktemp("built"))


@pytest.mark.realdata
def test_offline_build_stats_lookup_and_audit_on_the_real_snapshot(tmp_path: Path) -> None:
    out = tmp_path / "index.json.gz"
    build = cli(
        "build-index", "--manifests", str(snapshot()), "--out", str(out), "--offline", "--commit", SNAPSHOT_COMMIT
    )
    assert build.returncode == 0, build.stderr
    # 19,961 digests in the YAML, one of them malformed.
    assert "published 19960 digests" in build.stdout
    assert "images/k8s-staging-ingress-nginx/images.yaml (image e2e-test-httpbin): malformed digest" in build.stderr
    assert out.read_bytes()[:2] == b"\x1f\x8b"

    stats = cli("stats", "--index", str(out), "--json")
    assert stats.returncode == 0, stats.stderr
    report = json.loads(stats.stdout)
    assert report["counts"]["digests"] == 19960 and report["counts"]["projects"] == 75
    assert report["source"]["commit"] == SNAPSHOT_COMMIT and report["age_seconds"] < 600
    assert (report["uri"], report["schema"], report["generation"]) == (str(out), 1, out.stat().st_mtime_ns)
    assert report["resolution"] == {"resolved": 0, "unresolved": 19960, "children_resolved": False}
    text = cli("stats", "--index", str(out)).stdout
    assert f"source commit  {SNAPSHOT_COMMIT}" in text and "19960 unresolved" in text

    index = DigestIndex.from_json(gzip.decompress(out.read_bytes()))
    pause = index.projects["k8s-staging-kubernetes"].images["pause"]
    pause_39 = next(d for d, tags in pause.digests.items() if "3.9" in tags)

    found = cli("lookup", "--index", str(out), "pause")
    assert found.returncode == 0, found.stderr
    assert "promoted to 44 paths, 2 repositories at each of 22 registry hosts:" in found.stdout
    assert "    HOST/k8s-artifacts-prod/images/pause\n" in found.stdout
    assert "    HOST/k8s-artifacts-prod/images/kubernetes/pause\n" in found.stdout
    assert "HOST: REGION-docker.pkg.dev, REGION one of: asia-east1, asia-south1," in found.stdout
    assert f"{pause_39}  3.9 " in found.stdout
    where = json.loads(cli("lookup", "--index", str(out), "--json", pause_39).stdout)
    assert where["found"] and where["kind"] == "digest"
    [image] = where["images"]
    assert (image["project"], image["image"], image["digests"]) == (
        "k8s-staging-kubernetes",
        "pause",
        [{"digest": pause_39, "tags": ["3.9"], "children": None, "platforms": None, "parent": None, "platform": None}],
    )
    assert f"{AR}/pause" in image["paths"] and len(image["paths"]) == 44
    # The answer, then its one digest.
    assert cli("lookup", "--index", str(out), f"{AR}/pause:3.9").stdout.count(pause_39) == 2
    wrong = cli("lookup", "--index", str(out), f"{AR}/pause:3.8@{pause_39}")
    shown = " ".join(wrong.stdout.split())
    assert wrong.returncode == 1 and shown.startswith("NOT PROMOTED: ") and "but not with tag '3.8'" in shown
    missing = cli("lookup", "--index", str(out), "pauze")
    assert missing.returncode == 1 and "did you mean pause" in missing.stdout

    # Digest references only: a tag alone is resolved at the registry, which is not on loopback here.
    table = cli(
        "audit", "--index", str(out), "--format", "table", f"{AR}/pause@{pause_39}", f"{AR}/pause:latest@{pause_39}"
    )
    assert table.returncode == 1, table.stderr
    rows = table.stdout.splitlines()
    assert rows[0].split()[:3] == ["verdict", "basis", "/"]
    assert rows[2].startswith("VERIFIED  listed") and rows[3].startswith("REJECTED  tag_mismatch")
    assert rows[-1] == "2 verdicts: 1 VERIFIED, 1 REJECTED"

    path = f"{AR}/pause"
    good = [{"action": "INSERT", "digest": f"{path}@{pause_39}", "tag": f"{path}:3.9"}]
    run = cli("audit", "--index", str(out), stdin="\n".join(json.dumps(p) for p in good) + "\n\n")
    assert run.returncode == 0, run.stderr
    assert [(v["verdict"], v["basis"], v["registry_calls"]) for v in verdicts(run.stdout)] == [
        ("VERIFIED", "listed", 0)
    ]
    bad = [
        *good,
        {"action": "INSERT", "digest": f"{path}@{pause_39}", "tag": f"{path}:not-promoted"},
        {"action": "INSERT", "digest": f"{AR}/pauze@{pause_39}"},
        {"action": "DELETE", "tag": f"{path}:3.9"},
        {"action": "INSERT", "digest": f"gcr.io/k8s-staging-kubernetes/pause@{pause_39}"},
    ]
    run = cli("audit", "--index", str(out), stdin="\n".join(json.dumps(p) for p in bad) + "\n{oops\n")
    assert run.returncode == 1
    got = [(v["verdict"], v["basis"] or v["reason"]) for v in verdicts(run.stdout)]
    assert got[:5] == [
        ("VERIFIED", "listed"),
        ("REJECTED", "tag_mismatch"),
        ("REJECTED", "unknown_image"),
        ("REJECTED", "deletion"),
        ("IGNORED", "not_audited"),
    ]
    assert got[5][0] == "MALFORMED"


@pytest.mark.registry
def test_audit_references_as_inserts_and_an_alarm_wins_over_a_retry(
    tmp_path: Path, registry_proxy: RegistryProxy
) -> None:
    promotion = scenario.promote(registry_proxy.host, via=registry_proxy.host)
    _, out = built_index(promotion, tmp_path)
    pause = next(e for e in promotion.events("pause", "us-central1") if "tag" in e)
    path, tag = pause["tag"].rsplit(":", 1)
    listed = pause["digest"].rsplit("@", 1)[1]
    registry_proxy.clear()
    run = cli("audit", "--index", str(out), pause["digest"], pause["tag"], f"{path}:{tag}@{listed}")
    assert run.returncode == 0, run.stderr
    assert [(v["action"], v["digest"], v["tag"], v["verdict"], v["basis"]) for v in verdicts(run.stdout)] == [
        ("INSERT", listed, None, "VERIFIED", "listed"),
        ("INSERT", None, tag, "VERIFIED", "listed"),
        ("INSERT", listed, tag, "VERIFIED", "listed"),
    ]
    # Only the tag alone needed the registry: it says which digest the tag points at.
    assert [r.path for r in registry_proxy.registry_requests()] == [f"/v2/{path.split('/', 1)[1]}/manifests/{tag}"]
    # REFERENCEs replace stdin: what is piped in is not read.
    piped = cli("audit", "--index", str(out), pause["digest"], stdin='{"action": "DELETE", "tag": "x"}\n')
    assert len(verdicts(piped.stdout)) == 1 and piped.returncode == 0

    # Every request fails from here; Retry-After: 0 keeps the client's retries from sleeping (it still tries
    # four times each and gives up).
    registry_proxy.fail_next(1000, 503, retry_after="0")
    by_tag = json.dumps({"action": "INSERT", "tag": pause["tag"]})
    waiting = cli("audit", "--index", str(out), "--format", "table", stdin=by_tag + "\n")
    assert waiting.returncode == 75 and waiting.stdout.splitlines()[-1] == "1 verdict: 1 RETRY"
    deletion = json.dumps({"action": "DELETE", "digest": pause["digest"]})
    both = cli("audit", "--index", str(out), stdin=f"{by_tag}\n{deletion}\n")
    assert [v["verdict"] for v in verdicts(both.stdout)] == ["RETRY", "REJECTED"]
    # A script that retries on 75 would miss the deletion: the alarm wins.
    assert both.returncode == 1


def test_an_alarm_wins_over_a_retry(tmp_path: Path) -> None:
    # An index this version cannot read leaves every well-formed event open; the malformed one is an alarm.
    damaged = tmp_path / "damaged.json"
    damaged.write_text("garbage")
    payloads = json.dumps({"action": "INSERT", "tag": f"{AR}/a:v1"}) + "\n{oops\n"
    run = cli("audit", "--index", str(damaged), stdin=payloads)
    assert [v["verdict"] for v in verdicts(run.stdout)] == ["RETRY", "MALFORMED"]
    assert run.returncode == 1 and "not JSON" in run.stderr
    only_open = cli("audit", "--index", str(damaged), stdin=payloads.split("\n")[0])
    assert only_open.returncode == 75


def test_stdout_of_audit_holds_one_verdict_line_per_payload_and_nothing_else(built: tuple[Path, Path]) -> None:
    payloads = [json.dumps({"action": "INSERT", "digest": f"{AR}/a@{digest('1')}"}), "{oops", ""]
    run = cli("audit", "--index", str(built[1]), stdin="\n".join(payloads))
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["verdict"] for line in lines] == ["VERIFIED", "MALFORMED"]
    assert run.returncode == 1 and run.stderr == ""


@pytest.mark.parametrize(("recorded_ago", "grace"), [(0.0, None), (10.0, "5")])
def test_a_would_be_reject_waits_for_a_pending_commit_as_the_function_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded_ago: float, grace: str | None
) -> None:
    root, index = small_index(tmp_path)
    older, newer = "1" * 40, "2" * 40
    rebuilt = cli(
        "build-index", "--manifests", str(root), "--out", str(index), "--offline",
        "--commit", older, "--committed-at", "2026-01-01T00:00:00Z",
    )  # fmt: skip
    assert rebuilt.returncode == 0, rebuilt.stderr
    # sync_index accepted a newer commit and has not published it yet.
    PendingCommits.beside(open_store(str(index)), wall=lambda: time.time() - recorded_ago).record(
        newer, "2026-01-02T00:00:00Z"
    )
    if grace is not None:
        monkeypatch.setenv("AUDITOR_PENDING_GRACE_SECONDS", grace)
    unknown = f"{AR}/not-yet-promoted@{digest('new')}"
    deleted = json.dumps({"action": "DELETE", "digest": f"{AR}/a@{digest('1')}"})
    run = cli(
        "audit", "--index", str(index), stdin=json.dumps({"action": "INSERT", "digest": unknown}) + "\n" + deleted
    )
    decided = [(line["verdict"], line["reason"]) for line in verdicts(run.stdout)]
    if grace is None:
        # Within the grace, as AUDITOR_PENDING_GRACE_SECONDS (default 1800) says; a deletion is never held back.
        assert decided == [("RETRY", "index behind"), ("REJECTED", "deletion")]
    else:
        # After it, decided against the index there is, and the stuck sync is an alarm of its own.
        assert decided == [("REJECTED", "unknown_image"), ("REJECTED", "deletion")]
        stale = [json.loads(line) for line in run.stdout.splitlines() if '"stale_sync"' in line]
        assert stale and stale[0]["commit"] == newer and stale[0]["severity"] == "ERROR"
        # For people, the same alarm on stderr as a sentence.
        table = cli("audit", "--index", str(index), "--format", "table", unknown)
        assert f"ERROR sync_index accepted k8s.io commit {newer}" in table.stderr
        assert "'freshness'" not in table.stderr
    assert run.returncode == 1, run.stderr
    alone = cli("audit", "--index", str(index), unknown)
    assert alone.returncode == (75 if grace is None else 1), alone.stderr


def test_a_payload_that_is_not_utf8_is_malformed_not_a_crash(built: tuple[Path, Path]) -> None:
    _, index = built
    run = subprocess.run(
        [sys.executable, "-m", "function", "audit", "--index", str(index)],
        input=b"\xff\xfe{\n",
        capture_output=True,
        check=False,
        env={**os.environ, "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8:strict"},
    )
    assert run.returncode == 1, run.stderr
    assert [v["verdict"] for v in verdicts(run.stdout.decode())] == ["MALFORMED"]
    # Nothing but the verdict lines is written, and nothing at all to the people's stream.
    assert run.stderr == b""


def test_a_live_reader_sees_each_verdict_before_more_input_comes(built: tuple[Path, Path]) -> None:
    # As `gcloud pubsub subscriptions pull ... | python -m function audit` does: input arrives one event at a
    # time, and each verdict must reach the reader while the CLI waits for the next one.
    payload = json.dumps({"action": "INSERT", "digest": f"{AR}/a@{digest('1')}"}) + "\n"
    command = [sys.executable, "-m", "function", "audit", "--index", str(built[1])]
    # Block-buffered, as a shell starts it (this machine's PYTHONUNBUFFERED would hide the bug).
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    pipe = subprocess.PIPE
    with subprocess.Popen(command, env=env, stdin=pipe, stdout=pipe, stderr=pipe) as run:
        assert run.stdin is not None and run.stdout is not None
        for _ in range(2):
            run.stdin.write(payload.encode())
            run.stdin.flush()
            ready, _, _ = select.select([run.stdout], [], [], 30)
            assert ready, "no verdict line while the CLI waits for more input"
            assert json.loads(run.stdout.readline())["verdict"] == "VERIFIED"
        run.stdin.close()
        assert run.wait(timeout=60) == 0


def test_a_reader_that_goes_away_stops_the_output_quietly(built: tuple[Path, Path]) -> None:
    # As `python -m function audit --format table < payloads | head -1` does: the table outgrows the pipe's
    # buffer after the reader has closed it.
    payload = json.dumps({"action": "INSERT", "digest": f"{AR}/a@{digest('1')}"}) + "\n"
    command = [sys.executable, "-m", "function", "audit", "--index", str(built[1]), "--format", "table"]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as run:
        assert run.stdout is not None
        run.stdout.close()
        _, stderr = run.communicate((payload * 2000).encode(), timeout=120)
    # The exit code of what was written: every verdict VERIFIED.
    assert run.returncode == 0, stderr
    assert b"Traceback" not in stderr and b"BrokenPipeError" not in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["audit", "--index", "{missing}", f"{AR}/a:v1"], "no index file at"),
        (["stats", "--index", "{missing}"], "no index file at"),
        (["lookup", "--index", "{missing}", "a"], "no index file at"),
        (["stats", "--index", "{tmp}/no-folder/index.json"], "no-folder' does not exist"),
        (["audit", "--index", "s3://bucket/index.json"], "unsupported scheme"),
        (["audit", "--index", "{index}", "not-a-reference"], "REFERENCE 'not-a-reference'"),
        (["audit", "--index", "{index}", f"{AR}/a"], "names neither a tag nor a digest"),
        (["lookup", "--index", "{index}", f"{AR}/A:v1"], "is not lowercase"),
        (
            ["build-index", "--manifests", "{tmp}/nowhere", "--out", "{tmp}/i.json"],
            "--manifests {tmp}/nowhere: no such",
        ),
        (["build-index", "--manifests", "{tmp}", "--out", "{tmp}/i.json"], "holds no manifests/ folder"),
        (["build-index", "--manifests", "{root}", "--out", "{tmp}/no-folder/i.json"], "no-folder' does not exist"),
        (["build-index", "--manifests", "{root}", "--out", "{index}", "--max-loss", "1.5"], "between 0 and 1"),
        (["build-index", "--manifests", "{root}", "--out", "{index}", "--max-loss", "-0.1"], "between 0 and 1"),
        (["build-index", "--manifests", "{root}", "--out", "{index}", "--commit", "576d58a"], "40 lowercase hex"),
        (["build-index", "--manifests", "{root}", "--out", "{index}", "--commit", "A" * 40], "40 lowercase hex"),
        (["build-index", "--manifests", "{root}", "--out", "{index}", "--committed-at", "soon"], "not an ISO 8601"),
        (["build-index", "--manifests", "{root}", "--out", "{index}", "--workers", "0"], "at least 1"),
        (["stats", "--index", "{index}", "--max-age", "an hour"], "is not a duration"),
        (["stats", "--index", "{index}", "--colour"], "unrecognized arguments: --colour"),
        (["stats", "--index", "{tmp}"], "is a folder: give the index file in it"),
        (["audit"], "--index"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_what_must_be_fixed_exits_2_saying_what(
    tmp_path: Path, built: tuple[Path, Path], args: list[str], message: str
) -> None:
    root, index = built
    before = index.read_bytes()
    names = {"tmp": str(tmp_path), "root": str(root), "index": str(index), "missing": str(tmp_path / "none.json")}
    run = cli(*(arg.format(**names) for arg in args), stdin="{}\n")
    assert run.returncode == 2, run.stderr
    assert message.format(**names) in run.stderr
    assert run.stdout == ""
    # Nothing in the error talks about a published index that may not exist.
    assert "published" not in run.stderr
    assert index.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "variables", "message"),
    [
        (["sweep"], {"AUDITOR_FROZEN_PREFIXES": "not a prefix!"}, "AUDITOR_FROZEN_PREFIXES: 'not a prefix!'"),
        (["audit", f"{AR}/a:v1"], {"AUDITOR_FROZEN_PREFIXES": "not a prefix!"}, "AUDITOR_FROZEN_PREFIXES"),
        (["audit", f"{AR}/a:v1"], {"AUDITOR_DEADLINE_SECONDS": "soon"}, "AUDITOR_DEADLINE_SECONDS='soon'"),
        (["audit", f"{AR}/a:v1"], {"AUDITOR_PENDING_GRACE_SECONDS": "-1"}, "AUDITOR_PENDING_GRACE_SECONDS='-1'"),
    ],
)
def test_a_bad_setting_in_the_environment_exits_2_naming_it(
    built: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, args: list[str], variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    run = cli(*args, "--index", str(built[1]))
    assert run.returncode == 2, run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr
    assert verdicts(run.stdout) == []


def test_a_sweep_of_an_unreadable_index_exits_2_saying_how_to_republish(tmp_path: Path) -> None:
    damaged = tmp_path / "index.json.gz"
    damaged.write_bytes(gzip.compress(b"not an index"))
    run = cli("sweep", "--index", str(damaged))
    # Not 1: nothing was swept, so nothing in the registries is known to be wrong.
    assert run.returncode == 2, run.stderr
    assert "is unreadable" in run.stderr and "build-index --force" in run.stderr
    assert run.stdout == ""


def test_no_credentials_for_cloud_storage_is_to_be_fixed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    # Named but absent: google-auth gives up on this before it would look anywhere else.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-key.json"))
    run = cli("stats", "--index", "gs://some-bucket/index.json.gz")
    assert (
        run.returncode == 2 and "no Google credentials" in run.stderr and "GOOGLE_APPLICATION_CREDENTIALS" in run.stderr
    )


@pytest.mark.emulators
def test_a_missing_bucket_is_to_be_fixed_a_missing_object_is_waited_for(
    tmp_path: Path, gcs: GcsEmulator, gcs_env: str
) -> None:
    nowhere = "gs://no-such-bucket-anywhere/index.json.gz"
    for args in (["audit", "--index", nowhere, f"{AR}/a:v1"], ["stats", "--index", nowhere]):
        run = cli(*args)
        assert run.returncode == 2 and "bucket 'no-such-bucket-anywhere' does not exist" in run.stderr
        assert run.stdout == ""
    write_project(tmp_path, "p", destinations=[AR], images=[{"name": "a", "dmap": {digest("1"): ["v1"]}}])
    build = cli("build-index", "--manifests", str(tmp_path), "--out", nowhere, "--offline")
    assert build.returncode == 2 and "does not exist" in build.stderr

    absent = f"gs://{gcs_env}/index.json.gz"
    # The bucket is there and a first sync may be on its way: events wait (RETRY), a retry can cure it.
    waiting = cli("audit", "--index", absent, f"{AR}/a:v1")
    assert waiting.returncode == 75 and [v["reason"] for v in verdicts(waiting.stdout)] == ["index unavailable"]
    stats = cli("stats", "--index", absent)
    assert stats.returncode == 2 and "the bucket exists but holds no such object" in stats.stderr


@pytest.mark.emulators
def test_a_would_be_reject_waits_for_a_pending_commit_in_cloud_storage(
    tmp_path: Path, gcs: GcsEmulator, gcs_env: str
) -> None:
    root, _ = small_index(tmp_path)
    uri = f"gs://{gcs_env}/index.json.gz"
    build = cli(
        "build-index", "--manifests", str(root), "--out", uri, "--offline",
        "--commit", "1" * 40, "--committed-at", "2026-01-01T00:00:00Z",
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    PendingCommits.beside(open_store(uri)).record("2" * 40, "2026-01-02T00:00:00Z")
    run = cli("audit", "--index", uri, f"{AR}/not-yet-promoted@{digest('new')}")
    assert [(v["verdict"], v["reason"]) for v in verdicts(run.stdout)] == [("RETRY", "index behind")]
    assert run.returncode == 75, run.stderr


def test_stats_max_age(tmp_path: Path) -> None:
    _, out = small_index(tmp_path)
    fresh = cli("stats", "--index", str(out), "--max-age", "3600", "--json")
    assert fresh.returncode == 0 and json.loads(fresh.stdout)["stale"] is False
    document = json.loads(out.read_text())
    document["built_at"] = "2020-01-01T00:00:00+00:00"
    out.write_text(json.dumps(document))
    stale = cli("stats", "--index", str(out), "--max-age", "3600")
    assert stale.returncode == 1
    assert "max age        3600s: STALE" in stale.stdout
    assert "longer than --max-age 3600s" in stale.stderr
    assert cli("stats", "--index", str(out)).returncode == 0


def test_build_index_refuses_an_index_it_cannot_read_unless_forced(tmp_path: Path) -> None:
    root, out = small_index(tmp_path)
    newer = json.dumps({"schema": 2, "written_by": "a newer deployment"})
    out.write_text(newer)
    refused = cli("build-index", "--manifests", str(root), "--out", str(out), "--offline")
    assert refused.returncode == 1
    assert "written by a newer version of the auditor" in refused.stderr and "--force" in refused.stderr
    assert out.read_text() == newer
    dry = cli("build-index", "--manifests", str(root), "--out", str(out), "--dry-run")
    assert dry.returncode == 1 and "would not publish" in dry.stderr and out.read_text() == newer
    forced_dry = cli("build-index", "--manifests", str(root), "--out", str(out), "--dry-run", "--force")
    assert forced_dry.returncode == 0 and out.read_text() == newer
    assert forced_dry.stdout.startswith(f"{out} holds an index this version cannot read (--force): would publish 1")
    # The audit cannot decide with it either, and says which version to use.
    audit = cli("audit", "--index", str(out), f"{AR}/a:v1")
    assert audit.returncode == 75 and "newer version" in str(verdicts(audit.stdout)[0]["message"])
    forced = cli("build-index", "--manifests", str(root), "--out", str(out), "--offline", "--force")
    assert forced.returncode == 0 and "published 1 digests" in forced.stdout
    assert json.loads(out.read_text())["schema"] == 1


def test_dry_run_shows_each_images_changes_and_publishes_nothing(tmp_path: Path) -> None:
    d = [digest(str(i)) for i in range(6)]
    root, out = small_index(
        tmp_path,
        [
            {"name": "a", "dmap": {d[0]: ["v0"], d[1]: ["v1"], d[2]: ["v2"]}},
            {"name": "b", "dmap": {d[3]: ["v3"]}},
            {"name": "same", "dmap": {d[5]: []}},
        ],
    )
    before = out.read_bytes()
    first = cli("build-index", "--manifests", str(root), "--out", str(tmp_path / "new.json"), "--dry-run")
    assert first.stdout.startswith(f"{tmp_path / 'new.json'} holds no index yet: would publish 5 digests of 3")
    assert first.returncode == 0 and not (tmp_path / "new.json").exists()
    write_project(
        root,
        "p",
        destinations=[AR, AR.replace("us-central1", "europe-west1")],
        images=[
            {"name": "a", "dmap": {d[0]: ["v0", "latest"], d[2]: ["v2"], d[4]: ["v4"]}},
            {"name": "c", "dmap": {d[3]: ["v3"]}},
            {"name": "same", "dmap": {d[5]: []}},
        ],
    )
    run = cli("build-index", "--manifests", str(root), "--out", str(out), "--dry-run")
    # d[1] goes: 1 of 5 promoted digests, more than the default 10%.
    assert run.returncode == 1
    assert "would not publish: the new index would drop 1 of 5 promoted digests" in run.stderr
    assert "p a (1 of 3 digests)" in run.stderr
    assert run.stdout.splitlines() == [
        f"p + destination {AR.replace('us-central1', 'europe-west1')}",
        "p a",
        f"  + {d[4]} v4",
        f"  - {d[1]} v1",
        f"  ~ {d[0]} tags +latest",
        "p b (gone)",
        f"  - {d[3]} v3",
        "p c (new image)",
        f"  + {d[3]} v3",
        "3 images change: 2 digests added, 2 removed, 1 retagged; 1 destination changes",
    ]
    allowed = cli("build-index", "--manifests", str(root), "--out", str(out), "--dry-run", "--max-loss", "0.5")
    assert allowed.returncode == 0 and allowed.stdout.endswith("dry run: nothing was published\n")
    assert out.read_bytes() == before
    again = cli("build-index", "--manifests", str(root), "--out", str(out), "--offline", "--max-loss", "0.5")
    assert again.returncode == 0
    unchanged = cli("build-index", "--manifests", str(root), "--out", str(out), "--dry-run")
    assert unchanged.returncode == 0 and unchanged.stdout.startswith("no promoted image changes at")


def test_a_refused_rebuild_names_the_images_it_would_drop(tmp_path: Path) -> None:
    images: list[dict[str, object]] = [
        {"name": f"img{i:02}", "dmap": {digest(f"{i}-{j}"): [f"v{j}"] for j in range(i + 1)}} for i in range(12)
    ]
    root, out = small_index(tmp_path, [*images, {"name": "kept", "dmap": {digest("kept"): ["v1"]}}])
    before = out.read_bytes()
    write_project(root, "p", destinations=[AR], images=[{"name": "kept", "dmap": {digest("kept"): ["v1"]}}])
    refused = cli("build-index", "--manifests", str(root), "--out", str(out), "--offline")
    assert refused.returncode == 1 and out.read_bytes() == before
    assert "would drop 78 of 79 promoted digests (more than 10%): p img11 (12 of 12 digests); p img10" in refused.stderr
    assert "p img02 (3 of 3 digests); and 2 more. The published index is kept" in refused.stderr
    assert "img01" not in refused.stderr and "kept" not in refused.stderr.split("The published")[0]


def test_unreadable_manifests_are_refused(tmp_path: Path) -> None:
    root, out = small_index(tmp_path)
    before = out.read_bytes()
    (root / "images" / "p" / "images.yaml").write_text("- name: [\n")
    build = cli("build-index", "--manifests", str(root), "--out", str(out), "--offline")
    assert build.returncode == 1 and "could not be read" in build.stderr
    assert out.read_bytes() == before


def test_log_levels(tmp_path: Path) -> None:
    root, out = small_index(tmp_path, [{"name": "a", "dmap": {digest("1"): ["v1"], "sha256:short": ["v2"]}}])
    default = cli("build-index", "--manifests", str(root), "--out", str(out), "--offline")
    assert "WARNING manifest problem" in default.stderr
    quiet = cli("build-index", "--manifests", str(root), "--out", str(out), "--offline", "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""
    refused = cli("build-index", "--manifests", str(root), "--out", str(out), "--offline", "-q", "--committed-at", "")
    assert refused.returncode == 2 and "ISO 8601" in refused.stderr


def test_registry_retries_show_only_when_verbose() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {name: logging.getLogger(name).level for name in PROGRESS_LOGGERS})
    transport, progress = logging.getLogger("function.registry._send"), logging.getLogger("function.index.publish")
    try:
        set_log_levels(0)
        assert progress.isEnabledFor(logging.INFO) and not transport.isEnabledFor(logging.INFO)
        assert transport.isEnabledFor(logging.WARNING)
        set_log_levels(-1)
        assert not progress.isEnabledFor(logging.WARNING) and transport.isEnabledFor(logging.ERROR)
        set_log_levels(1)
        assert transport.isEnabledFor(logging.DEBUG) and progress.isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


HELP = {
    "build-index": ["(default: 0.1)", "(default: 8)", "(default: refuse)", "--dry-run"],
    "audit": ["(default: json, the verdict lines)", "REFERENCE", "$AUDITOR_INDEX_URI", "--replay", "--all"],
    "stats": ["(default: no limit)", "(default: text)", "90s, 30m, 2h, 1d"],
    "lookup": ["(default: text)", "TERM", "registry.k8s.io/pause:3.10"],
    "sweep": [
        "(default: json, the verdict lines)",
        "(default: 8)",
        "$AUDITOR_SWEEP_MAX_SECONDS or 3000",
        "--report FILE",
        "--host HOST",
    ],
}


@pytest.mark.parametrize("command", sorted(HELP))
def test_every_command_explains_its_defaults_exit_codes_and_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    flowing = " ".join(text.split())  # argparse wraps to the terminal's width
    for expected in [*HELP[command], "exit codes:", "-q, --quiet", "-v, --verbose", f"python -m function {command} "]:
        assert " ".join(expected.split()) in flowing, expected
    codes = text.split("exit codes:")[1]
    for code in ("0", "1", "2", "75"):
        assert f"\n  {code}  " in codes, code


def test_the_top_level_help_lists_every_command_its_exit_codes_and_an_example() -> None:
    run = process("--help")
    assert run.returncode == 0
    for expected in ("build-index", "audit", "sweep", "stats", "lookup", "exit codes:", "example:"):
        assert expected in run.stdout, expected
    codes = run.stdout.split("exit codes:")[1]
    for code in ("0", "1", "2", "75"):
        assert f"\n  {code}  " in codes, code


def test_the_index_uri_may_come_from_the_functions_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, out = small_index(tmp_path)
    monkeypatch.setenv("AUDITOR_INDEX_URI", str(out))
    run = cli("stats", "--json")
    assert run.returncode == 0 and json.loads(run.stdout)["uri"] == str(out)


@pytest.mark.parametrize("command", ["audit", "sweep"])
def test_a_bad_frozen_prefix_is_to_be_fixed(
    built: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    _, index = built
    monkeypatch.setenv("AUDITOR_FROZEN_PREFIXES", "UPPER//x")
    run = cli(command, "--index", str(index), stdin="{}\n")
    assert run.returncode == 2, run.stderr
    assert "AUDITOR_FROZEN_PREFIXES: 'UPPER//x' is not a registry path prefix" in run.stderr
    assert "Traceback" not in run.stderr and run.stdout == ""


def test_frozen_prefixes_are_matched_as_event_paths_are_spelled_even_without_an_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreadable = tmp_path / "index.json"
    unreadable.write_text("not an index")
    monkeypatch.setenv("AUDITOR_FROZEN_PREFIXES", "EU.GCR.IO/k8s-artifacts-prod/")
    run = cli("audit", "--index", str(unreadable), f"eu.gcr.io/k8s-artifacts-prod/pause@{digest('1')}")
    assert run.returncode == 1, run.stderr
    assert [(line["verdict"], line["reason"]) for line in verdicts(run.stdout)] == [("REJECTED", "frozen")]
