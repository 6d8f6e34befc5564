"""The CLI as an operator runs it: a real subprocess, real files, exit codes of the contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from function.index.digests import DigestIndex
from tests.support.manifests import digest, snapshot, write_project

AR = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images"


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "function", *args], input=stdin, capture_output=True, text=True, check=False
    )


def verdicts(stdout: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [line for line in lines if "verdict" in line]


@pytest.mark.realdata
def test_offline_build_stats_and_audit_on_the_real_snapshot(tmp_path: Path) -> None:
    out = tmp_path / "index.json.gz"
    build = cli("build-index", "--manifests", str(snapshot()), "--out", str(out), "--offline", "--commit", "576d58a")
    assert build.returncode == 0, build.stderr
    # 19,961 digests in the YAML, one of them malformed.
    assert "published 19960 digests" in build.stdout
    assert "images/k8s-staging-ingress-nginx/images.yaml (image e2e-test-httpbin): malformed digest" in build.stderr
    assert out.read_bytes()[:2] == b"\x1f\x8b"

    stats = cli("stats", "--index", str(out), "--json")
    assert stats.returncode == 0, stats.stderr
    report = json.loads(stats.stdout)
    assert report["counts"]["digests"] == 19960 and report["counts"]["projects"] == 75
    assert report["source"]["commit"] == "576d58a" and report["age_seconds"] < 600
    assert "unresolved" in cli("stats", "--index", str(out)).stdout

    index = DigestIndex.from_json(__import__("gzip").decompress(out.read_bytes()))
    pause = index.projects["k8s-staging-kubernetes"].images["pause"]
    listed, tags = next((d, t) for d, t in pause.digests.items() if t)
    path = f"{AR}/pause"
    good = [{"action": "INSERT", "digest": f"{path}@{listed}", "tag": f"{path}:{tags[0]}"}]
    run = cli("audit", "--index", str(out), stdin="\n".join(json.dumps(p) for p in good) + "\n\n")
    assert run.returncode == 0, run.stderr
    assert [(v["verdict"], v["basis"], v["registry_calls"]) for v in verdicts(run.stdout)] == [
        ("VERIFIED", "listed", 0)
    ]

    bad = [
        *good,
        {"action": "INSERT", "digest": f"{path}@{listed}", "tag": f"{path}:not-promoted"},
        {"action": "INSERT", "digest": f"{AR}/pauze@{listed}"},
        {"action": "DELETE", "tag": f"{path}:{tags[0]}"},
        {"action": "INSERT", "digest": f"gcr.io/k8s-staging-kubernetes/pause@{listed}"},
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


def test_a_missing_index_and_broken_manifests_are_errors(tmp_path: Path) -> None:
    payloads = json.dumps({"action": "INSERT", "tag": f"{AR}/a:v1"}) + "\n{oops\n"
    missing = cli("audit", "--index", str(tmp_path / "none.json"), stdin=payloads)
    # Still one line per payload: a malformed one is decided without an index, the rest wait for one.
    assert missing.returncode == 75 and "no digest index" in missing.stderr
    lines = verdicts(missing.stdout)
    assert [(v["verdict"], v["reason"] if v["verdict"] == "RETRY" else "") for v in lines] == [
        ("RETRY", "index unavailable"),
        ("MALFORMED", ""),
    ]
    assert lines[0]["tag"] == "v1"
    (tmp_path / "damaged.json").write_text("garbage")
    damaged = cli("audit", "--index", str(tmp_path / "damaged.json"), stdin=payloads)
    assert damaged.returncode == 75 and "not JSON" in damaged.stderr
    assert len(verdicts(damaged.stdout)) == 2
    unsupported = cli("audit", "--index", "s3://bucket/index.json", stdin=payloads)
    assert unsupported.returncode == 2 and "s3://" in unsupported.stderr and unsupported.stdout == ""
    write_project(tmp_path / "m", "p", destinations=[AR], images=[{"name": "a", "dmap": {digest("1"): ["v1"]}}])
    (tmp_path / "m" / "images" / "p" / "images.yaml").write_text("- name: [\n")
    out = tmp_path / "index.json"
    build = cli("build-index", "--manifests", str(tmp_path / "m"), "--out", str(out), "--offline")
    assert build.returncode == 1 and "could not be read" in build.stderr
    assert not out.exists()
    assert cli("audit").returncode == 2


def test_a_rebuild_that_would_drop_most_digests_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "m"
    many = {digest(str(i)): [f"v{i}"] for i in range(20)}
    write_project(root, "p", destinations=[AR], images=[{"name": "a", "dmap": many}])
    out = tmp_path / "index.json"
    assert cli("build-index", "--manifests", str(root), "--out", str(out), "--offline").returncode == 0
    before = out.read_bytes()
    write_project(root, "p", destinations=[AR], images=[{"name": "a", "dmap": dict(list(many.items())[:5])}])
    refused = cli("build-index", "--manifests", str(root), "--out", str(out), "--offline")
    assert refused.returncode == 1 and "would drop 15 of 20" in refused.stderr
    assert out.read_bytes() == before
    garbled = cli("build-index", "--manifests", str(root), "--out", str(out), "--offline", "--committed-at", "soon")
    assert garbled.returncode == 1 and "not ISO 8601" in garbled.stderr
    allowed = cli("build-index", "--manifests", str(root), "--out", str(out), "--offline", "--max-loss", "0.9")
    assert allowed.returncode == 0 and "published 5 digests" in allowed.stdout
