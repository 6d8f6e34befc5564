"""The CLI as an on-call operator uses it at 3 a.m.: answers that are never wrong or misleading (a typo is no
all-clear, an unresolved list is no "not promoted", a stuck sync is no "fresh"), re-auditing past events,
and the conventions of an installed command."""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from function.cli import replay
from function.cli.common import duration
from function.index import manifests
from function.index.digests import DigestIndex, Source
from function.index.pending import PendingCommits
from function.storage.uri import open_store
from tests.support import scenario
from tests.support.cli import Ran, built_index, run_cli
from tests.support.github import GitHubServer
from tests.support.manifests import digest, write_project
from tests.support.proxy import RegistryProxy

ROOT = Path(__file__).resolve().parents[1]
AR = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images"
EU = "europe-west1-docker.pkg.dev/k8s-artifacts-prod/images"
LISTED, UNRESOLVED, OTHER = digest("listed"), digest("unresolved"), digest("other")
COMMIT, NEWER = "a" * 40, "b" * 40


def flowing(text: str) -> str:
    return " ".join(text.split())


def verdicts(stdout: str) -> list[dict[str, Any]]:
    return [line for line in map(json.loads, stdout.splitlines()) if "verdict" in line]


@pytest.fixture
def index(tmp_path: Path) -> Path:
    """pause promoted to two regions: 3.9 (a single manifest, resolved) and 3.10 (a list nobody has resolved
    yet, as after an offline build)."""
    root = tmp_path / "m"
    write_project(
        root,
        "k8s-staging-kubernetes",
        destinations=[AR, EU],
        images=[{"name": "pause", "dmap": {LISTED: ["3.9"], UNRESOLVED: ["3.10"]}}],
    )
    built = DigestIndex.build(
        manifests.load(root), source=Source(commit=COMMIT, committed_at="2026-12-01T10:00:00Z")
    ).with_resolutions({LISTED: []})
    out = tmp_path / "index.json"
    out.write_bytes(built.to_json())
    return out


def cli(index: Path, *args: str, stdin: str | bytes = "") -> Ran:
    return run_cli(*args[:1], "--index", str(index), *args[1:], stdin=stdin)


# --- 1. a typo is never an all-clear --------------------------------------------------------------------


def test_a_reference_on_a_host_that_is_no_registry_exits_2_naming_the_nearest(index: Path) -> None:
    typo = cli(index, "audit", f"us-centrl1-docker.pkg.dev/k8s-artifacts-prod/images/pause@{LISTED}")
    assert typo.returncode == 2 and verdicts(typo.stdout) == []
    assert "us-centrl1-docker.pkg.dev is no registry of the index" in typo.stderr
    assert "did you mean us-central1-docker.pkg.dev?" in typo.stderr
    pasted = cli(index, "audit", "registry.k8s.io/pause:3.10")
    assert pasted.returncode == 2 and "IGNORED" not in pasted.stdout
    assert (
        "registry.k8s.io is the public name" in pasted.stderr and "`lookup registry.k8s.io/pause:3.10`" in pasted.stderr
    )
    assert f"such as {AR}/pause:3.10" in pasted.stderr
    looked = cli(index, "lookup", f"eu-west1-docker.pkg.dev/k8s-artifacts-prod/images/pause@{LISTED}")
    assert looked.returncode == 2 and "did you mean europe-west1-docker.pkg.dev?" in looked.stderr
    # The registry's own payloads keep the function's IGNORED: they name what was really pushed.
    payload = json.dumps({"action": "INSERT", "digest": f"quay.io/x/pause@{LISTED}"})
    stdin = cli(index, "audit", stdin=payload + "\n")
    assert stdin.returncode == 0 and [v["verdict"] for v in verdicts(stdin.stdout)] == ["IGNORED"]


def test_a_frozen_host_is_audited_not_refused(index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITOR_FROZEN_PREFIXES", "eu.gcr.io/k8s-artifacts-prod")
    frozen = cli(index, "audit", f"eu.gcr.io/k8s-artifacts-prod/pause@{LISTED}")
    assert frozen.returncode == 1 and [v["reason"] for v in verdicts(frozen.stdout)] == ["frozen"]


@pytest.mark.parametrize("term", ["registry.k8s.io/pause:3.9", "pause:3.9", f"registry.k8s.io/pause@{LISTED}"])
def test_lookup_takes_the_public_name_and_answers_for_every_destination(index: Path, term: str) -> None:
    found = cli(index, "lookup", "--json", term)
    assert found.returncode == 0, found.stderr
    answer = json.loads(found.stdout)
    [image] = answer["images"]
    assert image["paths"] == [f"{AR}/pause", f"{EU}/pause"]
    assert [d["digest"] for d in image["digests"]] == [LISTED]
    assert cli(index, "lookup", term).stdout.startswith(f"PROMOTED: {LISTED} as pause:3.9 at 2 paths\n")
    absent = cli(index, "lookup", "registry.k8s.io/pause:3.11")
    assert absent.returncode == 1 and absent.stdout.startswith("NOT PROMOTED: tag '3.11' is not promoted")


# --- 2. an unresolved list is never "not promoted" ------------------------------------------------------


@pytest.mark.parametrize(
    "term",
    [f"{AR}/pause@{OTHER}", f"{AR}/pause:3.10@{OTHER}", f"registry.k8s.io/pause@{OTHER}", OTHER, OTHER[7:]],
)
def test_lookup_of_a_digest_that_may_be_a_child_of_an_unresolved_list_exits_75(index: Path, term: str) -> None:
    found = cli(index, "lookup", term)
    assert found.returncode == 75, found.stdout
    assert "not promoted" not in found.stdout.lower()
    assert found.stdout.startswith("UNDECIDED: ") and f"may be a child of {UNRESOLVED}" in flowing(found.stdout)
    assert json.loads(cli(index, "lookup", "--json", term).stdout)["maybe_child_of"] == [UNRESOLVED]


def test_a_digest_promoted_elsewhere_says_so(tmp_path: Path, index: Path) -> None:
    found = cli(index, "lookup", f"{AR}/pause:3.9@{OTHER}")
    assert "Elsewhere" not in found.stdout
    root = tmp_path / "m"
    write_project(root, "other", destinations=[AR], images=[{"name": "busybox", "dmap": {OTHER: ["1.0"]}}])
    both = tmp_path / "both.json"
    both.write_bytes(DigestIndex.build(manifests.load(root), source=Source()).with_resolutions({LISTED: []}).to_json())
    elsewhere = cli(both, "lookup", f"{AR}/pause:3.9@{OTHER}")
    assert elsewhere.returncode == 1
    assert "Elsewhere it is promoted as busybox:1.0" in flowing(elsewhere.stdout)


def test_a_digest_under_a_tag_no_unresolved_list_carries_is_not_promoted(index: Path) -> None:
    # 3.9 is a resolved-or-single listing; only an unresolved list carrying the tag could hold the child.
    found = cli(index, "lookup", f"{AR}/pause:3.9@{OTHER}")
    assert found.returncode == 1 and found.stdout.startswith("NOT PROMOTED: ")


def test_an_ambiguous_digest_prefix_exits_2(tmp_path: Path) -> None:
    twins = ["sha256:abcdef" + "0" * 58, "sha256:abcdef" + "1" * 58]
    write_project(tmp_path / "m", "p", destinations=[AR], images=[{"name": "a", "dmap": {t: [] for t in twins}}])
    out = tmp_path / "index.json"
    assert run_cli("build-index", "--manifests", str(tmp_path / "m"), "--out", str(out), "--offline").returncode == 0
    ambiguous = cli(out, "lookup", "sha256:abcdef")
    assert ambiguous.returncode == 2 and "sha256:abcdef is ambiguous" in ambiguous.stderr and ambiguous.stdout == ""
    assert cli(out, "lookup", "sha256:abcdef1").returncode == 0


# --- 3. stats: a stuck sync is not fresh, and how far behind the head ------------------------------------


def test_stats_counts_pending_commits_and_fails_max_age_past_the_grace(
    index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDITOR_HEAD_URL", "http://127.0.0.1:1/repos/kubernetes/k8s.io/commits/{branch}")
    monkeypatch.setenv("AUDITOR_PENDING_GRACE_SECONDS", "1800")
    store = open_store(str(index))
    # Accepted by sync_index 67 minutes ago and never published.
    PendingCommits.beside(store, wall=lambda: time.time() - 67 * 60).record(NEWER, "2026-12-01T11:00:00Z")
    stats = cli(index, "stats", "--max-age", "1d")
    assert stats.returncode == 1, stats.stderr
    assert "pending        1 commits accepted by sync_index and not published" in stats.stdout
    assert f"{NEWER} (2026-12-01T11:00:00Z) waiting 67m" in stats.stdout
    assert "PAST the 1800s grace" in stats.stdout
    assert f"sync_index accepted k8s.io commit {NEWER} 67m ago" in stats.stderr
    assert "AUDITOR_PENDING_GRACE_SECONDS" in stats.stderr
    report = json.loads(cli(index, "stats", "--json").stdout)
    assert [(p["commit"], p["past_grace"]) for p in report["pending"]] == [(NEWER, True)]
    assert report["source"]["committed_at"] == "2026-12-01T10:00:00Z"
    # The head could not be asked: said, and nothing fails for it.
    assert report["head"]["known"] is False and "127.0.0.1:1" in report["head"]["problem"]
    assert cli(index, "stats").returncode == 0
    # Unset, the head is asked only with --head: no machine waits on GitHub unasked.
    monkeypatch.delenv("AUDITOR_HEAD_URL")
    assert json.loads(cli(index, "stats", "--json").stdout)["head"]["problem"].startswith("not asked")
    # Within the grace, a pending commit is shown but is no alarm.
    monkeypatch.setenv("AUDITOR_PENDING_GRACE_SECONDS", "7200")
    assert cli(index, "stats", "--max-age", "1d").returncode == 0


def test_stats_shows_how_far_behind_the_branch_head_the_index_is(index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with GitHubServer() as github:
        github.heads["main"] = github.add(NEWER, "2026-12-01T12:30:00Z")
        monkeypatch.setenv("AUDITOR_HEAD_URL", github.head_template)
        stats = cli(index, "stats")
        report = json.loads(cli(index, "stats", "--format", "json").stdout)
    assert stats.returncode == 0, stats.stderr
    assert f"branch head    {NEWER} (main, 2026-12-01T12:30:00Z): the index's commit is 2.5h older" in stats.stdout
    assert report["head"] == {
        "known": True,
        "branch": "main",
        "commit": NEWER,
        "committed_at": "2026-12-01T12:30:00Z",
        "index_at_head": False,
        "behind_seconds": 9000,
    }


# --- 4. re-auditing past events ------------------------------------------------------------------------


def past_line(verdict: str, reason: str | None, reference: str, **fields: object) -> dict[str, object]:
    path, _, digest_ = reference.partition("@")
    return {
        "severity": "ERROR" if verdict == "REJECTED" else "INFO",
        "message": "then",
        "verdict": verdict,
        "reason": reason,
        "basis": None,
        "source": "event",
        "action": "INSERT",
        "path": path,
        "digest": digest_ or None,
        "tag": None,
        "index": {"commit": "0" * 40, "generation": 1},
        **fields,
    }


def test_replay_writes_what_changed_with_the_previous_verdict(index: Path) -> None:
    fixed = past_line("REJECTED", "unknown_digest", f"{AR}/pause@{LISTED}")  # yesterday's index lacked it
    same = past_line("VERIFIED", None, f"{EU}/pause@{LISTED}", basis="listed")
    still_bad = past_line("REJECTED", "unknown_image", f"{AR}/nginx@{LISTED}")
    sweep = {**same, "source": "sweep", "action": None}
    lines = [fixed, same, still_bad, sweep]
    stdin = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n"
    run = cli(index, "audit", "--replay", stdin=stdin)
    # Exit code over every new verdict: the unknown image is still REJECTED.
    assert run.returncode == 1, run.stderr
    [changed] = verdicts(run.stdout)
    assert (changed["verdict"], changed["basis"], changed["path"]) == ("VERIFIED", "listed", f"{AR}/pause")
    assert changed["previous"] == {"verdict": "REJECTED", "reason": "unknown_digest", "index": fixed["index"]}
    assert changed["index"] == {"commit": COMMIT, "generation": index.stat().st_mtime_ns}
    assert "skipped 2 lines" in run.stderr
    every = cli(index, "audit", "--replay", "--all", stdin=stdin)
    assert [v["previous"]["verdict"] for v in verdicts(every.stdout)] == ["REJECTED", "VERIFIED", "REJECTED"]
    # As `gcloud logging read --format=json` writes them: newest first, each line in its jsonPayload.
    entries = [
        {"timestamp": f"2026-12-04T0{hour}:00:00.000000Z", "severity": line["severity"], "jsonPayload": line}
        for hour, line in zip((3, 2, 1), [still_bad, same, fixed], strict=True)
    ]
    logged = cli(index, "audit", "--replay", "--all", "--format", "table", stdin=json.dumps(entries))
    assert logged.returncode == 1, logged.stderr
    rows = logged.stdout.splitlines()
    assert [row.split()[0] for row in rows[2:5]] == ["VERIFIED", "VERIFIED", "REJECTED"]
    assert "listed (was REJECTED unknown_digest)" in rows[2] and "listed (was VERIFIED)" in rows[3]
    assert max(len(row) for row in rows) <= 120
    assert rows[-1] == "3 verdicts: 2 VERIFIED, 1 REJECTED"
    # Only fixed events: exit 0.
    assert cli(index, "audit", "--replay", stdin=json.dumps(fixed)).returncode == 0


def test_replay_refuses_a_broken_array_and_a_reference(index: Path) -> None:
    broken = cli(index, "audit", "--replay", stdin="[{")
    assert broken.returncode == 2 and "JSON array" in broken.stderr
    assert cli(index, "audit", "--replay", f"{AR}/pause@{LISTED}").returncode == 2
    assert cli(index, "audit", "--all").returncode == 2


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_line = st.fixed_dictionaries(
    {"verdict": st.sampled_from(["REJECTED", "VERIFIED", "x"])},
    optional={
        "action": st.sampled_from(["INSERT", "DELETE", "PATCH"]) | _json,
        "path": st.sampled_from([f"{AR}/pause", ""]) | _json,
        "digest": st.sampled_from([LISTED, "sha256:bad"]) | _json,
        "tag": st.sampled_from(["3.9", "a b"]) | _json,
        "source": st.sampled_from(["event", "sweep"]) | _json,
        "reason": _json,
        "index": _json,
    },
)


@given(st.binary(max_size=300) | st.lists(_line | _json, max_size=5).map(lambda v: json.dumps(v).encode()))
def test_the_replay_reader_takes_anything_without_crashing(data: bytes) -> None:
    try:
        read = replay.read(data)
    except replay.ReplayError:
        assert data.lstrip()[:1] == b"["
        return
    for past in read.events:
        event = json.loads(past.payload)
        assert event["action"] in ("INSERT", "DELETE") and ("digest" in event or "tag" in event)
        assert set(past.previous) == {"verdict", "reason", "index"}


@given(st.lists(_line, max_size=5))
def test_the_replay_reader_reads_each_event_line(lines: list[dict[str, object]]) -> None:
    data = "\n".join(json.dumps(line) for line in lines).encode()
    read = replay.read(data)
    assert len(read.events) + read.skipped == len(lines)


# --- 5. conventions ------------------------------------------------------------------------------------


def test_version_and_options_before_or_after_the_command(index: Path) -> None:
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip().endswith("0.1.0")
    for args in (["-q", "--json", "stats"], ["stats", "-q", "--json"], ["--format", "json", "stats", "-q"]):
        run = run_cli(*args, "--index", str(index))
        assert run.returncode == 0 and json.loads(run.stdout)["source"]["commit"] == COMMIT, args
    table = run_cli("--format", "table", "audit", "--index", str(index), f"{AR}/pause@{LISTED}")
    assert table.stdout.splitlines()[-1] == "1 verdict: 1 VERIFIED"
    fresh = index.parent / "fresh.json"
    built = run_cli("build-index", "--json", "--manifests", str(index.parent / "m"), "--out", str(fresh), "--offline")
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["counts"]["digests"] == 2


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400)])
def test_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


def test_an_error_from_a_variable_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITOR_INDEX_URI", str(tmp_path / "none.json"))
    for command in (["stats"], ["lookup", "pause"], ["audit", f"{AR}/pause@{LISTED}"]):
        run = run_cli(*command)
        assert run.returncode == 2 and "AUDITOR_INDEX_URI" in run.stderr and "--index" not in run.stderr, command
    monkeypatch.setenv("AUDITOR_INDEX_URI", str(tmp_path / "no-folder" / "index.json"))
    assert "AUDITOR_INDEX_URI" in run_cli("stats").stderr
    helped = run_cli("stats", "--help")
    assert "$AUDITOR_INDEX_URI" in " ".join(helped.stdout.split())


def test_sweep_checks_its_report_folder_before_sweeping(index: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    for report, message in [
        (tmp_path / "nowhere" / "sweep.json", "does not exist"),
        (tmp_path, "is a folder"),
    ]:
        run = cli(index, "sweep", "--report", str(report))
        assert run.returncode == 2 and message in run.stderr and run.stdout == ""
    assert time.monotonic() - started < 5


def test_a_long_wait_says_what_it_waits_for(caplog: pytest.LogCaptureFixture) -> None:
    from function.cli.common import SAY_WAIT_AFTER, waiting

    with caplog.at_level("INFO", logger="function.cli"), waiting("reading gs://b/index.json.gz"):
        time.sleep(SAY_WAIT_AFTER + 0.5)
    assert "reading gs://b/index.json.gz ..." in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="function.cli"), waiting("quick"):
        pass
    time.sleep(SAY_WAIT_AFTER + 0.2)
    assert "quick" not in caplog.text


def test_pip_install_declares_the_runtime_dependencies_and_the_command() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = [
        line.strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(project["dependencies"]) == sorted(required)
    assert project["scripts"] == {"promotion-auditor": "function.cli:main"}


@pytest.mark.registry
def test_lookup_shows_each_childs_platform_and_a_rebuild_records_those_of_older_lists(
    tmp_path: Path, registry_proxy: RegistryProxy
) -> None:
    promotion = scenario.promote(registry_proxy.host, via=registry_proxy.host)
    root, out = built_index(promotion, tmp_path)
    [parent] = [a.digest for a in promotion.artifacts["pause"] if a.kind == "listed" and a.tag == "3.10"]
    children = [a.digest for a in promotion.artifacts["pause"] if a.kind == "child"]
    named = [f"{os}/{architecture}" for os, architecture in scenario.PLATFORMS]

    rows = [f"      {child}  {platform}" for child, platform in zip(children, named, strict=True)]

    def shown() -> list[str]:
        found = run_cli("lookup", "--index", str(out), "registry.k8s.io/pause:3.10")
        assert found.returncode == 0, found.stderr
        return found.stdout.splitlines()

    assert set(rows) <= set(shown())
    child = run_cli("lookup", "--index", str(out), "--format", "json", children[1])
    assert {e["platform"] for m in json.loads(child.stdout)["images"] for e in m["digests"]} == {named[1]}
    table = run_cli("lookup", "--index", str(out), children[1]).stdout
    assert f"    {children[1]}  {named[1]}\n      child of {parent} (3.10)" in table

    # An index published before platforms were recorded: the next build fetches its lists again, once.
    assert out.read_bytes()[:1] == b"{"
    document = orjson.loads(out.read_bytes())
    del document["platforms"]
    lists = [d for d, children in document["manifests"].items() if children]
    out.write_bytes(orjson.dumps(document))
    assert {f"      {child}" for child in children} <= set(shown())
    registry_proxy.clear()
    assert run_cli("build-index", "--manifests", str(root), "--out", str(out)).returncode == 0
    fetched = {r.path.rsplit("/", 1)[1] for r in registry_proxy.registry_requests()}
    assert len(lists) == 2 and fetched == set(lists)
    assert set(rows) <= set(shown())
    registry_proxy.clear()
    assert run_cli("build-index", "--manifests", str(root), "--out", str(out)).returncode == 0
    assert registry_proxy.registry_requests() == []
