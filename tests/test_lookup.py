"""``lookup``: image names, digests (listed, or a platform child) and references, and the text people read."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from function.cli.lookup import text
from function.index import manifests
from function.index.digests import DigestIndex, Source
from function.index.lookup import AmbiguousDigest, by_version, lookup
from function.reference import InvalidReference, parse_reference
from tests.support.manifests import digest, write_project

AR = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images"
EU = "europe-west1-docker.pkg.dev/k8s-artifacts-prod/images"
LIST, SINGLE, UNRESOLVED = digest("list"), digest("single"), digest("unresolved")
AMD64, ARM64 = digest("amd64"), digest("arm64")


def flowing(text: str) -> str:
    """``text`` with its line breaks and indents as single spaces (sentences are wrapped to 120 columns)."""
    return " ".join(text.split())


@pytest.fixture
def index(tmp_path: Path) -> DigestIndex:
    write_project(
        tmp_path,
        "k8s-staging-kubernetes",
        destinations=[AR, EU],
        images=[
            {"name": "pause", "dmap": {LIST: ["3.9"], SINGLE: ["3.8", "latest"], UNRESOLVED: []}},
            {"name": "kubernetes/pause", "dmap": {LIST: ["3.9"]}},
        ],
    )
    write_project(tmp_path, "other", destinations=[AR], images=[{"name": "busybox", "dmap": {SINGLE: ["1.0"]}}])
    built = DigestIndex.build(manifests.load(tmp_path), source=Source(commit="c"))
    return built.with_resolutions({LIST: [AMD64, ARM64], SINGLE: []}, {LIST: ("linux/amd64", "linux/arm64/v8")})


def test_an_image_name_shows_every_path_digest_and_tag(index: DigestIndex) -> None:
    found = lookup(index, "pause")
    assert found.found and found.kind == "image"
    [match] = found.as_dict()["images"]
    assert match["paths"] == [f"{AR}/pause", f"{EU}/pause"] and match["staging"] == "gcr.io/k8s-staging-kubernetes"
    assert {d["digest"]: (d["tags"], d["children"]) for d in match["digests"]} == {
        LIST: (["3.9"], [AMD64, ARM64]),
        SINGLE: (["3.8", "latest"], []),
        UNRESOLVED: ([], None),
    }
    shown = text(found)
    assert f"    {LIST}  3.9          manifest list of 2 platforms" in shown
    assert f"    {SINGLE}  3.8, latest  single manifest" in shown
    assert f"    {UNRESOLVED}  (untagged)   not resolved yet" in shown
    # A name with a slash is an image name too, not a registry path.
    assert lookup(index, "kubernetes/pause").as_dict()["images"][0]["paths"] == [
        f"{AR}/kubernetes/pause",
        f"{EU}/kubernetes/pause",
    ]


def test_a_digest_shows_every_image_that_promotes_it_or_whose_child_it_is(index: DigestIndex) -> None:
    shared = lookup(index, SINGLE).as_dict()
    assert [(m["project"], m["image"], m["digests"][0]["tags"]) for m in shared["images"]] == [
        ("k8s-staging-kubernetes", "pause", ["3.8", "latest"]),
        ("other", "busybox", ["1.0"]),
    ]
    child = lookup(index, ARM64)
    assert child.found
    entry = {"digest": ARM64, "tags": ["3.9"], "children": None, "platforms": None, "parent": LIST}
    assert [(m["image"], m["digests"]) for m in child.as_dict()["images"]] == [
        ("pause", [entry | {"platform": "linux/arm64/v8"}]),
        ("kubernetes/pause", [entry | {"platform": "linux/arm64/v8"}]),
    ]
    assert (
        f"  a platform child of 1 of its 3 digests:\n    {ARM64}  linux/arm64/v8\n      child of {LIST} (3.9)\n"
        in text(child)
    )
    # One digest looked up: its children in full, each with the platform its descriptor names.
    assert f"      {AMD64}  linux/amd64\n      {ARM64}  linux/arm64/v8" in text(lookup(index, LIST))
    assert lookup(index, LIST).as_dict()["images"][0]["digests"][0]["platforms"] == ["linux/amd64", "linux/arm64/v8"]
    # As the verdict table shortens digests, and as other tools print them.
    # The answer names the digest in full.
    assert lookup(index, ARM64[:19] + "…").as_dict() == child.as_dict()
    assert lookup(index, ARM64.removeprefix("sha256:")).as_dict() == child.as_dict()
    # Not listed, while a list is unresolved: it may be its child, never "not promoted".
    nowhere = lookup(index, digest("nothing"))
    assert not nowhere.found and nowhere.undecided and nowhere.maybe_child_of == (UNRESOLVED,)
    assert f"may be a child of {UNRESOLVED}" in (nowhere.note or "")
    assert text(nowhere).startswith("UNDECIDED: ")


def test_a_digest_prefix_must_name_one_digest(index: DigestIndex) -> None:
    twins = ["sha256:abcdef" + "0" * 58, "sha256:abcdef" + "1" * 58]
    index = index.with_resolutions({UNRESOLVED: twins})
    with pytest.raises(AmbiguousDigest, match=f"sha256:abcdef is ambiguous: {twins[0]}, {twins[1]}; give more of it"):
        lookup(index, "sha256:abcdef")
    assert [e.parent for m in lookup(index, "sha256:abcdef1").matches for e in m.entries] == [UNRESOLVED]
    none = lookup(index, "sha256:fffffff")
    assert none.note == "no promoted digest or known platform child starts with sha256:fffffff"
    # Short bare hex may be an image name.
    assert lookup(index, "abcdef").kind == "image"


def test_a_reference_says_whether_it_is_promoted_there(index: DigestIndex) -> None:
    assert [d["digest"] for d in lookup(index, f"{EU}/pause:latest").as_dict()["images"][0]["digests"]] == [SINGLE]
    assert lookup(index, f"{AR}/pause@{ARM64}").found
    assert lookup(index, f"{AR}/pause:3.9@{ARM64}").found
    mismatch = lookup(index, f"{AR}/pause:3.9@{SINGLE}")
    assert not mismatch.found and mismatch.note == f"{SINGLE} is promoted at {AR}/pause, but not with tag '3.9'"
    assert lookup(index, f"{AR}/pause:4.0").note == f"tag '4.0' is not promoted at {AR}/pause"
    # Not here, and where it is instead: whether it is ours at all.
    assert lookup(index, f"{AR}/busybox@{LIST}").note == (
        f"{LIST} is not promoted at {AR}/busybox. Elsewhere it is promoted as kubernetes/pause:3.9, pause:3.9"
    )
    # Both projects promote to the same destination, each its own images.
    assert [m.promotion.project for m in lookup(index, f"{AR}/busybox").matches] == ["other"]
    signature = lookup(index, f"{AR}/pause:sha256-{SINGLE[7:]}.sig")
    assert signature.found and signature.about == f"tag 'sha256-{SINGLE[7:]}.sig' is the signature tag of {SINGLE}"
    assert flowing(text(signature)).startswith(
        flowing(f"PROMOTED: {SINGLE} as pause:3.8,latest at 2 paths {signature.about} pause (project")
    )
    orphan = lookup(index, f"{AR}/busybox:sha256-{LIST[7:]}.att")
    assert (orphan.note or "").startswith(f"{LIST} is not promoted at {AR}/busybox. Elsewhere") and "attestation" in (
        orphan.about or ""
    )
    stray = lookup(index, f"{AR}/nginx:1")
    assert stray.note == f"{AR}/nginx is under destination {AR}, but no promoted image is named 'nginx'"
    outside = lookup(index, f"gcr.io/k8s-staging-kubernetes/pause@{LIST}")
    assert not outside.found and "under no destination registry" in (outside.note or "")
    assert "did you mean pause" in (lookup(index, "paus").note or "")
    assert flowing(text(stray)).startswith(f"NOT PROMOTED: {stray.note}")
    with pytest.raises(InvalidReference):
        lookup(index, f"{AR}/Pause:1")


_COMPONENT = st.from_regex(r"[a-z0-9]{1,6}(?:[._-][a-z0-9]{1,6}){0,2}", fullmatch=True)
_TAG = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_DIGEST = st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True)


@given(
    host=st.sampled_from(["gcr.io", "us-central1-docker.pkg.dev", "127.0.0.1:5000", "localhost"]),
    components=st.lists(_COMPONENT, min_size=1, max_size=3),
    tag=st.none() | _TAG,
    digest_=st.none() | _DIGEST,
)
def test_references_as_people_write_them_round_trip(
    host: str, components: list[str], tag: str | None, digest_: str | None
) -> None:
    text_ = f"{host}/{'/'.join(components)}" + (f":{tag}" if tag else "") + (f"@{digest_}" if digest_ else "")
    reference = parse_reference(text_)
    assert (reference.path, reference.tag, reference.digest) == (f"{host}/{'/'.join(components)}", tag, digest_)


@given(st.text(max_size=80))
def test_any_text_is_a_reference_or_says_why_not(garbage: str) -> None:
    try:
        reference = parse_reference(garbage)
    except InvalidReference as error:
        assert str(error)
    else:
        spelled = reference.path + (f":{reference.tag}" if reference.tag else "")
        spelled += f"@{reference.digest}" if reference.digest else ""
        assert parse_reference(spelled) == reference


def test_digests_are_shown_in_tag_version_order_prereleases_first() -> None:
    tags = {
        "a": ["v1.30.0"],
        "b": ["v1.30.0-alpha.0"],
        "c": ["v1.30.0-rc.1"],
        "d": ["v1.9.9"],
        "e": [],
        "f": ["v1.10.0"],
    }
    assert by_version(tags) == ["d", "f", "b", "c", "a", "e"]
    assert by_version({"x": ["3.10"], "y": ["3.9"]}) == ["y", "x"]
