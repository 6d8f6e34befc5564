"""Manifests -> digest index: nothing lost, oddities reported, lookups right, serialization faithful."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import orjson
import pytest
import yaml

from function.index import manifests
from function.index.digests import DigestIndex, InvalidIndex, Source
from tests.support.manifests import digest, snapshot, write_project

AR = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images"
EU = "europe-west1-docker.pkg.dev/k8s-artifacts-prod/images"


def independent_count(root: Path) -> tuple[set[tuple[str, str, str, str]], int]:
    """Every (project, image, digest, tag) of the YAML, counted with plain yaml.safe_load and a regex."""
    entries: set[tuple[str, str, str, str]] = set()
    bad = 0
    for images_file in sorted((root / "images").glob("*/images.yaml")):
        project = images_file.parent.name
        for image in yaml.safe_load(images_file.read_text()) or []:
            for d, tags in (image.get("dmap") or {}).items():
                if not re.fullmatch(r"sha256:[0-9a-f]{64}", d):
                    bad += 1
                    continue
                for tag in tags or [""]:
                    entries.add((project, image["name"], d, tag))
    return entries, bad


def index_entries(index: DigestIndex) -> set[tuple[str, str, str, str]]:
    return {
        (image.project, image.name, d, tag)
        for image in index.images()
        for d, tags in image.digests.items()
        for tag in (tags or {""})
    }


@pytest.mark.realdata
def test_real_snapshot_is_indexed_completely() -> None:
    root = snapshot()
    expected, bad = independent_count(root)
    manifest_set = manifests.load(root)
    index = DigestIndex.build(manifest_set, source=Source(commit="576d58a"))
    assert index_entries(index) == expected
    assert bad == 1
    malformed = [p for p in manifest_set.problems if "malformed digest" in p.message]
    assert len(malformed) == 1
    assert malformed[0].file == "images/k8s-staging-ingress-nginx/images.yaml"
    assert malformed[0].image == "e2e-test-httpbin"
    assert not manifest_set.fatal
    counts = index.counts()
    assert counts["projects"] == 75
    assert counts["digests"] == len({e[2] for e in expected})
    assert counts["destinations"] == 1694
    assert index.registry_hosts() >= {"us-central1-docker.pkg.dev", "gcr.io"}
    # kops repeats three names 113 times in one file: each is one image holding all of their digests.
    kops = index.projects["k8s-staging-kops"].images["dns-controller"]
    raw = yaml.safe_load((root / "images/k8s-staging-kops/images.yaml").read_text())
    assert set(kops.digests) == {d for i in raw if i["name"] == "dns-controller" for d in i["dmap"]}
    # Null dmaps and empty files are kept as projects/images promoting nothing, without a problem.
    assert index.projects["k8s-staging-sig-storage"].images["objectstorage-controller"].digests == {}
    assert index.projects["k8s-staging-tg-exporter"].images == {}


@pytest.mark.realdata
def test_real_index_round_trips_and_loads_fast() -> None:
    index = DigestIndex.build(manifests.load(snapshot()), source=Source(commit="576d58a"))
    index = index.with_resolutions({next(iter(index.promoted_digests())): [digest("child")]})
    data = index.to_json()
    started = time.perf_counter()
    loaded = DigestIndex.from_json(data)
    elapsed = time.perf_counter() - started
    assert index_entries(loaded) == index_entries(index)
    assert loaded.manifests == index.manifests
    assert loaded.counts() == index.counts()
    assert loaded.source.commit == "576d58a"
    # A loose bound for a noisy shared machine; the benchmark script reports the real figure.
    assert elapsed < 2.0


def test_oddities_are_reported_and_skipped(tmp_path: Path) -> None:
    good = digest("good")
    write_project(
        tmp_path,
        "p",
        destinations=[AR],
        images=[
            {"name": "a", "dmap": {good: ["v1"], "sha256:abc": ["v2"]}},
            {"name": "a", "dmap": {digest("second"): ["v3", "-bad"]}},
            {"name": "b", "dmap": None},
            {"name": "Bad Name", "dmap": {good: ["v1"]}},
        ],
    )
    write_project(tmp_path, "empty", destinations=[EU], images=None)
    (tmp_path / "manifests" / "orphan").mkdir()
    (tmp_path / "manifests" / "orphan" / "promoter-manifest.yaml").write_text("registries: []\n")
    manifest_set = manifests.load(tmp_path)
    problems = [str(p) for p in manifest_set.problems]
    assert any("images/p/images.yaml (image a): malformed digest 'sha256:abc'" in p for p in problems)
    assert any("malformed tag '-bad'" in p for p in problems)
    assert any("'Bad Name'" in p for p in problems)
    assert any("project orphan has no images.yaml" in p for p in problems)
    assert not manifest_set.fatal
    images = manifest_set.projects["p"].images
    assert images["a"] == {good: {"v1"}, digest("second"): {"v3"}}
    assert images["b"] == {}
    assert manifest_set.projects["empty"].images == {}


def test_unreadable_yaml_is_fatal(tmp_path: Path) -> None:
    write_project(tmp_path, "p", destinations=[AR], images=[])
    (tmp_path / "images" / "p" / "images.yaml").write_text("- name: a\n  dmap: {\n")
    manifest_set = manifests.load(tmp_path)
    assert [p.file for p in manifest_set.fatal] == [os.path.join("images", "p", "images.yaml")]


def test_lookup_prefers_the_longest_destination(tmp_path: Path) -> None:
    write_project(tmp_path, "root", destinations=[AR], images=[{"name": "kubernetes/foo", "dmap": {digest("1"): []}}])
    write_project(tmp_path, "nested", destinations=[f"{AR}/kubernetes"], images=[{"name": "foo", "dmap": {}}])
    write_project(tmp_path, "shared", destinations=[AR], images=[{"name": "bar/baz", "dmap": {digest("2"): ["v"]}}])
    write_project(tmp_path, "deep", destinations=[f"{AR}/deep"], images=[{"name": "x", "dmap": {digest("3"): []}}])
    index = DigestIndex.build(manifests.load(tmp_path), source=Source())
    # Both projects promote to this very path: the longer destination names it, both digest sets count.
    foo = index.locate(f"{AR}/kubernetes/foo")
    assert foo is not None and foo.image is not None
    assert (foo.image.name, foo.destination) == ("foo", f"{AR}/kubernetes")
    assert foo.image.promotes(digest("1"))
    baz = index.locate(f"{AR}/bar/baz")
    assert baz is not None and baz.image is not None and baz.image.project == "shared"
    unknown = index.locate(f"{AR}/kubernetes/nope")
    assert unknown is not None and unknown.image is None and unknown.destination == f"{AR}/kubernetes"
    under_deep = index.locate(f"{AR}/deep/y/z")
    assert under_deep is not None and under_deep.image is None and under_deep.destination == f"{AR}/deep"
    assert index.locate("gcr.io/somewhere/else") is None
    assert index.locate(f"{AR}x/foo") is None


def test_registry_hosts_are_matched_whatever_their_case(tmp_path: Path) -> None:
    write_project(tmp_path, "p", destinations=["EU.GCR.IO/Prod"], images=[{"name": "a", "dmap": {}}])
    manifest_set = manifests.load(tmp_path)
    # The host is case-insensitive; repository components are lowercase by grammar, so "Prod" is refused.
    assert any("has no valid 'name'" in p.message for p in manifest_set.problems)
    write_project(tmp_path, "p", destinations=["EU.GCR.IO:443/prod"], images=[{"name": "a", "dmap": {}}])
    index = DigestIndex.build(manifests.load(tmp_path), source=Source())
    assert index.registry_hosts() >= {"eu.gcr.io"}
    assert index.locate("eu.gcr.io/prod/a") is not None


def test_two_projects_promoting_one_name_to_a_shared_root(tmp_path: Path) -> None:
    write_project(tmp_path, "one", destinations=[AR], images=[{"name": "x", "dmap": {digest("1"): ["a"]}}])
    write_project(tmp_path, "two", destinations=[AR], images=[{"name": "x", "dmap": {digest("2"): ["b"]}}])
    index = DigestIndex.build(manifests.load(tmp_path), source=Source())
    index = index.with_resolutions({digest("2"): [digest("2-child")]})
    location = index.locate(f"{AR}/x")
    assert location is not None and location.image is not None
    assert set(location.image.digests) == {digest("1"), digest("2")}
    assert location.image.parents_of(digest("2-child")) == [digest("2")]


def test_rebuild_adopts_resolutions_of_digests_still_promoted(tmp_path: Path) -> None:
    write_project(tmp_path, "p", destinations=[AR], images=[{"name": "x", "dmap": {digest("1"): [], digest("2"): []}}])
    first = DigestIndex.build(manifests.load(tmp_path), source=Source())
    first = first.with_resolutions({digest("1"): [digest("c1")], digest("2"): []})
    write_project(tmp_path, "p", destinations=[AR], images=[{"name": "x", "dmap": {digest("1"): [], digest("3"): []}}])
    second = DigestIndex.build(manifests.load(tmp_path), source=Source(), previous=first)
    assert second.manifests == {digest("1"): [digest("c1")]}
    assert second.unresolved() == {digest("3")}
    image = second.projects["p"].images["x"]
    assert image.parents_of(digest("c1")) == [digest("1")]


def test_platforms_are_kept_aligned_carried_and_read_from_an_index_without_them(tmp_path: Path) -> None:
    write_project(tmp_path, "p", destinations=[AR], images=[{"name": "x", "dmap": {digest("1"): [], digest("2"): []}}])
    plain = DigestIndex.build(manifests.load(tmp_path), source=Source())
    children = {digest("1"): [digest("amd"), digest("win")], digest("2"): []}
    named = {digest("1"): ("linux/amd64", "windows/amd64 (10.0.17763.5458)")}
    labelled = plain.with_resolutions(children, named)
    read = DigestIndex.from_json(labelled.to_json())
    assert read.platforms == named and read.platforms.of_child(digest("win")) == "windows/amd64 (10.0.17763.5458)"
    assert read.platforms.of_child(digest("2")) == "" and read.to_resolve() == []
    # Carried into the next build with the children they describe.
    assert DigestIndex.build(manifests.load(tmp_path), source=Source(), previous=read).platforms == named
    # Misaligned with the children (a list whose entry lost a child), they are not recorded.
    assert plain.with_resolutions(children, {digest("1"): ("linux/amd64",)}).platforms == {}
    # An index written before platforms were recorded reads as one without them; a rebuild fetches its
    # resolved lists again, after the unresolved digests.
    document = orjson.loads(plain.with_resolutions({digest("1"): [digest("amd")]}).to_json())
    del document["platforms"]
    older = DigestIndex.from_json(orjson.dumps(document))
    assert older.platforms == {} and older.manifests == {digest("1"): [digest("amd")]}
    assert older.to_resolve() == [digest("2"), digest("1")]
    # Platforms that do not fit their lists are descriptive data gone bad: left out (and fetched again by the
    # next rebuild), never an index that cannot be read.
    damages: list[object] = [
        {"x": ["linux/amd64"]},
        [["linux/amd64", "linux/arm64"]],
        [[1]],
        ["linux/amd64"],
        [None, []],
    ]
    for damaged in damages:
        document["platforms"] = damaged
        read = DigestIndex.from_json(orjson.dumps(document))
        assert read.platforms == {} and read.to_resolve() == [digest("2"), digest("1")]
        assert read.manifests == {digest("1"): [digest("amd")]}


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"nope", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"schema": 99}', "schema 99"),
        (b'{"schema": 1, "projects": {}}', "damaged"),
        (b'{"schema": 1, "built_at": "x", "projects": {}, "manifests": {"x": []}}', "damaged"),
    ],
)
def test_damaged_indexes_are_refused_with_a_reason(data: bytes, fragment: str) -> None:
    with pytest.raises(InvalidIndex, match=fragment):
        DigestIndex.from_json(data)
