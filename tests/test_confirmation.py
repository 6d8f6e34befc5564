"""An unchanged sync confirms the stored index instead of writing it again: the generation stays (audit
instances key their reloads on it), and `stats --max-age` counts from the confirmation, so the index of a
quiet branch does not page overnight. On a local store and on fake-gcs-server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from function.storage.base import Confirmation, IndexStore
from function.storage.errors import GenerationMismatch
from function.storage.local import LocalStore
from function.storage.uri import open_store
from tests.support.cli import run_cli
from tests.support.functions import CommitsServer, TarballServer
from tests.support.oidc import CertServer
from tests.support.rigs import LATER_SHA, NEW_SHA, SyncRig

OLD_BUILD = "2020-01-01T00:00:00+00:00"


@pytest.fixture(params=["local", pytest.param("gcs", marks=pytest.mark.emulators)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> IndexStore:
    if request.param == "local":
        return LocalStore(tmp_path / "index.json.gz")
    bucket = request.getfixturevalue("gcs_env")
    return open_store(f"gs://{bucket}/index.json.gz")


@pytest.fixture
def rig(tmp_path: Path, store: IndexStore, google_certs: CertServer) -> Iterator[SyncRig]:
    with TarballServer() as tarballs, CommitsServer() as commits:
        yield SyncRig(tmp_path, tarballs, commits, google_certs, store)


def stats(uri: str, max_age: int) -> tuple[int, dict[str, object]]:
    run = run_cli("stats", "--index", uri, "--max-age", str(max_age), "--json")
    return run.returncode, json.loads(run.stdout)


def age_the_build(store: IndexStore) -> int:
    """Rewrite the stored index as built long ago (as after a quiet night); its new generation."""
    stored = store.read()
    assert stored is not None
    document = orjson.loads(stored.data)
    document["built_at"] = OLD_BUILD
    return store.write(orjson.dumps(document), if_generation=stored.generation)


def test_an_unchanged_resync_confirms_the_index_without_a_new_generation(rig: SyncRig, store: IndexStore) -> None:
    assert rig.resync(NEW_SHA)[1]["status"] == "published"
    assert store.confirmation() is None
    generation = age_the_build(store)
    assert stats(store.uri, 3600)[0] == 1  # what paged before: built long ago, nothing says it is current

    status, body = rig.resync(NEW_SHA)
    assert (status, body["status"], body["generation"]) == (200, "unchanged", generation)
    assert store.generation() == generation
    confirmation = store.confirmation()
    assert confirmation is not None and (confirmation.generation, confirmation.commit) == (generation, NEW_SHA)
    code, report = stats(store.uri, 3600)
    assert code == 0, report
    assert (report["generation"], report["built_at"], report["stale"]) == (generation, OLD_BUILD, False)
    assert report["confirmed"] == {"at": confirmation.confirmed_at, "commit": NEW_SHA}
    assert isinstance(report["age_seconds"], int) and report["age_seconds"] < 600

    # A publication starts afresh: a new generation, measured from its own build, with no confirmation.
    assert rig.push(LATER_SHA)[1]["status"] == "published"
    assert store.generation() != generation and store.confirmation() is None
    published = age_the_build(store)
    code, report = stats(store.uri, 3600)
    assert (code, report["generation"], report["confirmed"], report["stale"]) == (1, published, None, True)


def test_a_confirmation_of_a_replaced_generation_is_not_applied_to_the_new_one(store: IndexStore) -> None:
    first = store.write(orjson.dumps({"schema": 1}), if_generation=None)
    store.confirm(Confirmation(first, "2026-11-02T10:00:00+00:00", NEW_SHA))
    assert store.confirmation() == Confirmation(first, "2026-11-02T10:00:00+00:00", NEW_SHA)
    second = store.write(orjson.dumps({"schema": 1, "x": 1}), if_generation=first)
    assert store.confirmation() is None
    # Cloud Storage and the local store refuse it (412); fake-gcs-server (0.1.1) ignores preconditions on a
    # metadata patch and applies it, but the confirmation names its generation and is not taken for the new one.
    try:
        store.confirm(Confirmation(first, "2026-11-02T11:00:00+00:00", NEW_SHA))
    except GenerationMismatch:
        pass
    else:
        assert not isinstance(store, LocalStore), "the local store must refuse a stale confirmation"
    assert store.generation() == second and store.confirmation() is None


def test_a_failed_confirmation_is_a_warning_and_the_sync_still_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, google_certs: CertServer
) -> None:
    store = LocalStore(tmp_path / "index.json")
    with TarballServer() as tarballs, CommitsServer() as commits:
        rig = SyncRig(tmp_path, tarballs, commits, google_certs, store)
        assert rig.resync(NEW_SHA)[1]["status"] == "published"
        store.confirmation_path.mkdir()  # a folder where the sidecar file goes: replacing it fails
        status, body = rig.resync(NEW_SHA)
    assert (status, body["status"]) == (200, "unchanged")
    assert [line["sync"] for line in rig.lines() if "sync" in line] == ["published", "unchanged"]
    assert "the index stays unconfirmed by " + NEW_SHA in caplog.text
    assert store.confirmation() is None
