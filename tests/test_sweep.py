"""The sweep against Debian's registry: two regions on two hosts (proxies in front of the one registry),
listed the plain OCI way and through a server answering Google's tags/list extension over the same content.

Every request the sweep makes passes a proxy or the listing server, so the summary's ``registry_calls``
is checked against what they received.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from function.index import manifests
from function.index.digests import DigestIndex, Source
from function.index.resolve import resolve
from function.settings import SettingError
from function.storage.uri import open_store
from function.sweep.runner import Result, Sweep
from tests.support import regions as rig
from tests.support import signing
from tests.support.auditing import client
from tests.support.cli import Ran, run_cli
from tests.support.functions import FunctionServer
from tests.support.gcr import GcrListing
from tests.support.looping import looping
from tests.support.proxy import RegistryProxy
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.registry


@pytest.fixture
def regions(registry: RegistryServer) -> rig.Regions:
    return rig.build(registry.host, f"sweep-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def plain(registry: RegistryServer) -> Iterator[tuple[RegistryProxy, RegistryProxy]]:
    with RegistryProxy(registry.url) as complete, RegistryProxy(registry.url) as incomplete:
        yield complete, incomplete


@pytest.fixture
def extension(registry: RegistryServer) -> Iterator[tuple[GcrListing, GcrListing]]:
    with GcrListing(registry) as complete, GcrListing(registry) as incomplete:
        yield complete, incomplete


def index_for(tmp_path: Path, regions: rig.Regions, hosts: tuple[RegistryProxy, RegistryProxy]) -> DigestIndex:
    """The index as sync_index publishes it: every promoted list resolved."""
    root = regions.write_manifests(tmp_path / "manifests", hosts[0].host, hosts[1].host)
    index = DigestIndex.build(manifests.load(root), source=Source(commit="c0ffee"))
    index, summary = resolve(index, client(index.registry_hosts()))
    assert summary.resolved == 5
    return index


def swept(tmp_path: Path, regions: rig.Regions, hosts: tuple[RegistryProxy, RegistryProxy], **kwargs: Any) -> Result:
    index = index_for(tmp_path, regions, hosts)
    for host in hosts:
        host.clear()
    # No real pause before failed parts are listed again: the clients' clocks are fake, and so is this sleep.
    kwargs.setdefault("sleep", lambda seconds: None)
    return Sweep(index, registry_factory=client, signing=signing.policy(), **kwargs).run()


def findings(result: Result, regions: rig.Regions) -> set[tuple[Any, ...]]:
    """Each finding as (verdict, reason, host's role, image path, digest's name, tag, parent's name)."""
    names = {digest: name for name, digest in regions.digests.items()}
    rows = set()
    for f in result.findings:
        assert f.source == "sweep" and f.action is None and f.index is not None and f.index.commit == "c0ffee"
        assert f.path is not None and f.digest is not None
        region = "complete" if f"/{regions.complete}/" in f.path + "/" else "incomplete"
        rows.add(
            (f.verdict, f.reason, region, f.path.rsplit("/", 1)[1], names[f.digest], f.tag, names.get(f.parent or ""))
        )
    return rows


# What the incomplete region holds wrong, whichever way it is listed.
INCOMPLETE = {
    ("REJECTED", "tag_mismatch", "incomplete", "pause", "pause", "latest", None),
    ("MISSING", "absent", "incomplete", "pause", "pause-arm64", None, "pause"),
    ("MISSING", "tag_absent", "incomplete", "logger", "logger", "v1", None),
    ("MISSING", "absent", "incomplete", "etcd", "etcd", None, None),
    ("MISSING", "tag_absent", "incomplete", "etcd", "etcd", "3.5", None),
    ("MISSING", "tag_absent", "incomplete", "coredns", "coredns", "1.11", None),
    ("REJECTED", "unknown_digest", "incomplete", "coredns", "moved", "1.11", None),
    ("REJECTED", "unknown_image", "incomplete", "backdoor", "backdoor", "v1", None),
}


def output(stdout: str) -> list[dict[str, Any]]:
    """The verdict lines and the summary line (the logging library may add a diagnostic line of its own)."""
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [line for line in lines if "verdict" in line or "sweep" in line]


def calls_seen(*hosts: RegistryProxy) -> int:
    return sum(len(host.requests) for host in hosts)


def test_plain_registries_complete_and_incomplete_region(
    tmp_path: Path, regions: rig.Regions, plain: tuple[RegistryProxy, RegistryProxy]
) -> None:
    result = swept(tmp_path, regions, plain)
    # The complete region (lists, children, signature, attestation, referrer) raises nothing, nor does
    # anything outside the destinations; untagged content is invisible to a plain listing.
    assert findings(result, regions) == INCOMPLETE
    summary = result.summary.fields()
    assert summary["complete"] is True and summary["unswept"] == []
    assert (summary["hosts"], summary["rejected"], summary["missing"]) == (2, 3, 5)
    # pause, etcd, logger, coredns twice, plus backdoor (etcd's repository is still listed in the catalog).
    assert summary["repositories"] == 9
    assert summary["registry_calls"] == calls_seen(*plain) > 0
    missing = next(f for f in result.findings if f.reason == "absent" and f.parent is None)
    assert (missing.severity, missing.image, missing.registry_calls) == (40, "etcd", 1)
    # Content outside every destination is not even looked at.
    assert not [r for host in plain for r in host.requests if regions.outside in r.path]


def test_extension_walks_child_lists_and_never_asks_the_catalog(
    tmp_path: Path, regions: rig.Regions, extension: tuple[GcrListing, GcrListing]
) -> None:
    result = swept(tmp_path, regions, extension)
    # Every digest is listed there: the untagged stray push is found too, the SBOM referrer is verified.
    assert findings(result, regions) == INCOMPLETE | {
        ("REJECTED", "unknown_digest", "incomplete", "pause", "stray", None, None)
    }
    assert result.summary.complete and result.summary.registry_calls == calls_seen(*extension)
    for listing in extension:
        assert listing.catalog_requests() == 0
        listed = [r.path for r in listing.registry_requests() if r.path.endswith("/tags/list")]
        # One listing per repository and namespace: the root, then each image through its child list.
        assert len(listed) == len(set(listed))
        # No HEAD is needed to confirm what a complete listing says is absent.
        assert not [r for r in listing.registry_requests() if r.method == "HEAD"]


def test_a_region_down_is_unswept_and_never_missing(
    tmp_path: Path, regions: rig.Regions, plain: tuple[RegistryProxy, RegistryProxy]
) -> None:
    incomplete = plain[1]
    incomplete.fail_always(503)
    result = swept(tmp_path, regions, plain)
    assert result.findings == []
    assert result.summary.complete is False
    assert [part["path"] for part in result.summary.unswept] == [incomplete.host]
    assert "503" in result.summary.unswept[0]["reason"]
    assert result.summary.registry_calls == calls_seen(*plain)


def test_a_fault_in_one_repository_leaves_only_that_repository_unswept(
    tmp_path: Path, regions: rig.Regions, plain: tuple[RegistryProxy, RegistryProxy]
) -> None:
    incomplete = plain[1]
    # A repository this reader may not read: its listing fails, the rest of the region is swept.
    incomplete.fail_paths(f"/{regions.incomplete}/coredns/", status=403)
    result = swept(tmp_path, regions, plain)
    coredns = {row for row in INCOMPLETE if row[3] == "coredns"}
    assert findings(result, regions) == INCOMPLETE - coredns
    assert result.summary.unswept == [
        {"path": f"{incomplete.host}/{regions.incomplete}/coredns", "reason": result.summary.unswept[0]["reason"]}
    ]
    assert (
        "403" in result.summary.unswept[0]["reason"] and "and again after 15 s" in result.summary.unswept[0]["reason"]
    )


def test_a_part_that_fails_is_listed_again_after_a_pause(
    tmp_path: Path, regions: rig.Regions, plain: tuple[RegistryProxy, RegistryProxy]
) -> None:
    incomplete = plain[1]
    incomplete.fail_paths(f"/{regions.incomplete}/coredns/", status=403)
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        incomplete.heal()  # the fault is over by the time the sweep comes back

    result = swept(tmp_path, regions, plain, sleep=pause)
    assert pauses == [15.0]
    assert findings(result, regions) == INCOMPLETE
    assert result.summary.complete and result.summary.registry_calls == calls_seen(*plain)


def test_the_time_budget_names_what_it_did_not_reach(
    tmp_path: Path, regions: rig.Regions, plain: tuple[RegistryProxy, RegistryProxy]
) -> None:
    ticks = iter(range(1000))
    # Each look at the clock is a second: the budget runs out after the first few repositories.
    result = swept(tmp_path, regions, plain, max_seconds=6, workers=1, clock=lambda: float(next(ticks)))
    assert result.summary.complete is False
    assert all("budget of 6 s" in part["reason"] for part in result.summary.unswept)
    reported = {f.path for f in result.findings}
    unreached = {part["path"] for part in result.summary.unswept}
    assert not reported & unreached


def test_cli_exit_codes_report_and_table(
    tmp_path: Path, regions: rig.Regions, plain: tuple[RegistryProxy, RegistryProxy]
) -> None:
    complete, incomplete = plain
    out = tmp_path / "index.json"
    open_store(str(out)).write(index_for(tmp_path, regions, plain).to_json(), if_generation=None)

    def cli(*args: str) -> Ran:
        return run_cli("sweep", "--index", str(out), *args)

    clean = cli("--host", complete.host)
    assert clean.returncode == 0, clean.stderr
    lines = output(clean.stdout)
    assert len(lines) == 1 and lines[0]["severity"] == "INFO" and lines[0]["sweep"]["complete"] is True
    # Each part is named on stderr as its listing starts: a slow registry's wait says what it waits for.
    started = [line.rsplit(" ", 1)[-1] for line in clean.stderr.splitlines() if "sweep: listing " in line]
    assert started[0] == complete.host
    assert {part.split("/", 1)[0] for part in started} == {complete.host} and len(started) > 1
    assert "sweep: listing" not in cli("-q", "--host", complete.host).stderr

    report = tmp_path / "report.json"
    dirty = cli("--report", str(report))
    assert dirty.returncode == 1, dirty.stderr
    lines = output(dirty.stdout)
    assert {line["verdict"] for line in lines[:-1]} == {"REJECTED", "MISSING"}
    assert all(line["source"] == "sweep" and line["action"] is None for line in lines[:-1])
    assert lines[-1]["severity"] == "ERROR" and "verdict" not in lines[-1]
    document = json.loads(report.read_text())
    assert document["summary"] == lines[-1]["sweep"]
    assert [f["digest"] for f in document["findings"]] == [line["digest"] for line in lines[:-1]]
    assert {f["severity"] for f in document["findings"]} == {"ERROR"}

    table = cli("--format", "table")
    assert table.returncode == 1
    assert table.stdout.rstrip().endswith("5 MISSING, 3 REJECTED") and "{" not in table.stdout
    assert "Sweep of 2 registry hosts, 9 repositories" in table.stdout

    # Retry-After: 0 keeps the client's retries from sleeping: it still tries four times and gives up.
    incomplete.fail_next(1000, 503, retry_after="0")
    # A budget shorter than the pause before a second attempt: the fault is reported at once.
    unswept = cli("--host", incomplete.host, "--max-seconds", "10")
    assert unswept.returncode == 75, unswept.stderr
    assert output(unswept.stdout)[-1]["sweep"]["unswept"][0]["path"] == incomplete.host

    assert cli("--host", "registry.example").returncode == 2
    missing_index = run_cli("sweep", "--index", str(tmp_path / "none.json"))
    assert missing_index.returncode == 2 and "no index file at" in missing_index.stderr


@pytest.mark.emulators
def test_sweep_function_answers_with_the_summary(
    tmp_path: Path, regions: rig.Regions, plain: tuple[RegistryProxy, RegistryProxy]
) -> None:
    out = tmp_path / "index.json"
    env = {"AUDITOR_INDEX_URI": str(out)}
    with FunctionServer("sweep", "http", env, tmp_path) as function:
        # No index yet: the scheduler's retry will run it again.
        unread = requests.post(function.url, timeout=60)
        assert unread.status_code == 503 and "no digest index" in unread.json()["reason"]
        open_store(str(out)).write(index_for(tmp_path, regions, plain).to_json(), if_generation=None)
        assert requests.get(function.url, timeout=60).status_code == 405
        answer = requests.post(function.url, timeout=300)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        summary = body["sweep"]
        assert (summary["rejected"], summary["missing"], summary["complete"]) == (3, 5, True)
        assert {key: body[key] for key in summary} == summary
        lines = output(function.stdout_path.read_text())
    assert sum(1 for line in lines if line.get("source") == "sweep") == 8
    assert [line["sweep"] for line in lines if "sweep" in line] == [summary]


def test_extension_fault_on_one_listing_is_unswept_and_not_asked_again(
    tmp_path: Path, regions: rig.Regions, extension: tuple[GcrListing, GcrListing]
) -> None:
    incomplete = extension[1]
    listing = f"/v2/{regions.incomplete}/coredns/tags/list"
    incomplete.fail_paths(listing, status=403)
    result = swept(tmp_path, regions, extension)
    coredns = {row for row in INCOMPLETE if row[3] == "coredns"}
    assert findings(result, regions) == INCOMPLETE - coredns | {
        ("REJECTED", "unknown_digest", "incomplete", "pause", "stray", None, None)
    }
    assert [part["path"] for part in result.summary.unswept] == [f"{incomplete.host}/{regions.incomplete}/coredns"]
    # coredns is expected there, but its failed listing is not taken for its absence: it is listed once
    # more after a pause, and then named as unswept.
    assert [r.path for r in incomplete.registry_requests()].count(listing) == 2


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 3000.0), ("90", 90.0), ("0", None), ("-5", None), ("soon", None)]
)
def test_the_sweep_function_reads_its_budget_as_every_seconds_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, expected: float | None
) -> None:
    from function.services.sweep import SweepService

    monkeypatch.setenv("AUDITOR_INDEX_URI", str(tmp_path / "index.json"))
    if value is None:
        monkeypatch.delenv("AUDITOR_SWEEP_MAX_SECONDS", raising=False)
    else:
        monkeypatch.setenv("AUDITOR_SWEEP_MAX_SECONDS", value)
    if expected is None:
        with pytest.raises(SettingError, match=r"AUDITOR_SWEEP_MAX_SECONDS=.* is not a positive number of seconds"):
            SweepService.from_environment()
    else:
        assert SweepService.from_environment().max_seconds == expected


# --- listings bounded by bytes (issue 16) --------------------------------------------------------------


def test_a_tags_listing_that_links_back_to_itself_leaves_only_that_repository_unswept(
    tmp_path: Path, regions: rig.Regions, plain: tuple[RegistryProxy, RegistryProxy]
) -> None:
    incomplete = plain[1]
    repository = f"{regions.incomplete}/coredns"
    incomplete.serve(looping(repository, extension=False))
    result = swept(tmp_path, regions, plain)
    coredns = {row for row in INCOMPLETE if row[3] == "coredns"}
    # Never MISSING for it: the promoted coredns tags are not taken as absent.
    assert findings(result, regions) == INCOMPLETE - coredns
    assert [part["path"] for part in result.summary.unswept] == [f"{incomplete.host}/{repository}"]
    assert "links back to a page already read" in result.summary.unswept[0]["reason"]
    # The page is read once per pass (the sweep lists a failed part again after a pause), never followed.
    listed = [r for r in incomplete.registry_requests() if r.path == f"/v2/{repository}/tags/list"]
    assert len(listed) == 2
    assert not [r for r in incomplete.registry_requests() if r.path.startswith(f"/v2/{repository}/manifests/")]


@pytest.mark.parametrize("onward", [False, True], ids=["links-back", "passes-64-MiB"])
def test_an_extension_listing_without_end_is_unswept_and_never_missing(
    tmp_path: Path, regions: rig.Regions, extension: tuple[GcrListing, GcrListing], onward: bool
) -> None:
    incomplete = extension[1]
    repository = f"{regions.incomplete}/pause"
    incomplete.serve(looping(repository, extension=True, onward=onward, otherwise=incomplete.listing))
    result = swept(tmp_path, regions, extension)
    pause = {row for row in INCOMPLETE if row[3] == "pause"}
    assert findings(result, regions) == INCOMPLETE - pause
    assert [part["path"] for part in result.summary.unswept] == [f"{incomplete.host}/{repository}"]
    reason = result.summary.unswept[0]["reason"]
    listed = [r for r in incomplete.registry_requests() if r.path == f"/v2/{repository}/tags/list"]
    if onward:
        # 17 pages of just under 4 MiB pass 64 MiB; read in each of the two passes.
        assert "passed 64 MiB after 17 pages" in reason and len(listed) == 2 * 17
    else:
        assert "links back to a page already read" in reason and len(listed) == 2


def test_a_catalog_that_links_back_to_itself_leaves_that_host_unswept(
    tmp_path: Path, regions: rig.Regions, plain: tuple[RegistryProxy, RegistryProxy]
) -> None:
    complete, incomplete = plain
    incomplete.serve(looping("_catalog"))
    result = swept(tmp_path, regions, plain)
    # The other host is swept in full; nothing of this one is reported MISSING.
    assert findings(result, regions) == set()
    assert [part["path"] for part in result.summary.unswept] == [incomplete.host]
    assert "links back to a page already read" in result.summary.unswept[0]["reason"]
    assert [r.path for r in complete.registry_requests()].count("/v2/_catalog") == 1
