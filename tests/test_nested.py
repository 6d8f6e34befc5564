"""Nested indexes (issue 16): every descendant of a listed index, to a depth of 4, is a ``child`` of the
listed digest, in the index, the audit and the sweep."""

from __future__ import annotations

from pathlib import Path

import pytest

from function.auditor import Auditor
from function.index.digests import Source
from function.index.publish import rebuild
from function.index.source import FixedIndex
from function.storage.uri import open_store
from function.sweep.runner import Sweep
from tests.support import registry as reg
from tests.support import scenario
from tests.support.auditing import client, decide, load, outcome
from tests.support.proxy import RegistryProxy

NAME = "nested"


def d(n: int) -> str:
    return f"sha256:{n:064x}"


def test_descendants_reach_depth_four_and_no_further() -> None:
    from function.index.nesting import MAX_DEPTH, MAX_DESCENDANTS, descendants, with_nested

    # 1 -> 2 -> 3 -> 4 -> 5 -> 6: 2..5 are within depth 4, 6 is not.
    chain = {d(i): [d(i + 1)] for i in range(1, 6)}
    assert descendants(chain, d(1)) == (d(2), d(3), d(4), d(5))
    assert MAX_DEPTH == 4
    assert descendants(chain, d(9)) is None
    # A cycle ends, and the listed digest is never its own child.
    assert descendants({d(1): [d(2)], d(2): [d(1), d(3)]}, d(1)) == (d(2), d(3))
    wide = {d(1): [d(i) for i in range(2, MAX_DESCENDANTS + 10)]}
    assert len(descendants(wide, d(1)) or ()) == MAX_DESCENDANTS
    # A rebuild carries the nested entries of what it still promotes.
    assert with_nested({**chain, d(20): []}, [d(1)]) == {k: v for k, v in chain.items()}


def push_nested(host: str, repo: str) -> tuple[str, str, list[str]]:
    """An outer OCI index of an inner index (two platforms) and one image: (outer, inner, leaves)."""
    leaves = [reg.push_image(host, repo, platform=p, seed=f"nested-{p[1]}") for p in scenario.PLATFORMS]
    inner = reg.push_index(host, repo, leaves[:2])
    inner_type, inner_body = reg.fetch_manifest(host, repo, inner)
    single_type, single_body = reg.fetch_manifest(host, repo, leaves[2])
    entries = [
        reg._descriptor(inner_type, inner_body, inner),
        reg._descriptor(single_type, single_body, leaves[2]) | {"platform": {"os": "linux", "architecture": "ppc64le"}},
    ]
    outer = reg.push_manifest(host, repo, {"schemaVersion": 2, "mediaType": reg.OCI_INDEX, "manifests": entries}, "v1")
    return outer, inner, leaves


def publish_nested(tmp_path: Path, host: str, *, offline: bool) -> tuple[str, str, list[str], Path]:
    for region in scenario.REGIONS:
        outer, inner, leaves = push_nested(host, f"{region}/images/{NAME}")
    root = tmp_path / "manifests"
    scenario.write_tree(root, host, {NAME: {outer: ["v1"]}})
    out = tmp_path / "index.json"
    rebuild(root, open_store(str(out)), source=Source(commit="c1"), registry_factory=None if offline else client)
    return outer, inner, leaves, out


@pytest.mark.registry
def test_descendants_of_a_listed_index_are_its_children(tmp_path: Path, registry_proxy: RegistryProxy) -> None:
    host = registry_proxy.host
    outer, inner, leaves, out = publish_nested(tmp_path, host, offline=False)
    index = load(out)
    # The index records the nested index's children too, and maps every descendant to the listed digest.
    assert index.manifests[outer] == [inner, leaves[2]] and index.manifests[inner] == leaves[:2]
    location = index.locate(f"{host}/us-central1/images/{NAME}")
    assert location is not None and location.image is not None
    assert {c: location.image.parents_of(c) for c in [inner, *leaves]} == {c: [outer] for c in [inner, *leaves]}
    auditor = Auditor(FixedIndex(index), client(index.registry_hosts()))
    path = f"{host}/us-central1/images/{NAME}"
    for child in [inner, *leaves]:
        verdict = decide(auditor, path, child)
        assert (outcome(verdict), verdict.parent) == (("VERIFIED", "child", 0), outer)


@pytest.mark.registry
def test_a_true_miss_resolves_nested_indexes(tmp_path: Path, registry_proxy: RegistryProxy) -> None:
    host = registry_proxy.host
    outer, _inner, leaves, out = publish_nested(tmp_path, host, offline=True)
    index = load(out)
    assert outer in index.unresolved()
    auditor = Auditor(FixedIndex(index), client(index.registry_hosts()))
    path = f"{host}/europe-west1/images/{NAME}"
    # The outer index and the inner one: two GETs, then remembered.
    verdict = decide(auditor, path, leaves[0])
    assert (outcome(verdict), verdict.parent) == (("VERIFIED", "child", 2), outer)
    verdict = decide(auditor, path, leaves[1])
    assert (outcome(verdict), verdict.parent) == (("VERIFIED", "child", 0), outer)


@pytest.mark.registry
@pytest.mark.parametrize("offline", [False, True])
def test_the_sweep_reports_a_missing_descendant(tmp_path: Path, registry_proxy: RegistryProxy, offline: bool) -> None:
    host = registry_proxy.host
    outer, inner, leaves, out = publish_nested(tmp_path, host, offline=offline)
    index = load(out)
    reg.delete_manifest(host, f"asia-east1/images/{NAME}", leaves[0])
    result = Sweep(index, registry_factory=client, sleep=lambda seconds: None).run()
    found = {
        (f.verdict, f.reason, f.path, f.parent)
        for f in result.findings
        if f.digest in (outer, inner, *leaves) and f.path is not None and f.path.endswith(f"/{NAME}")
    }
    assert found == {("MISSING", "absent", f"{host}/asia-east1/images/{NAME}", outer)}
