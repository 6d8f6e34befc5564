"""Property-based tests: every parser of outside input fails only with its own, explained error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from function.events import MalformedEvent, unwrap_pubsub
from function.github import webhook
from function.index import manifests
from function.index.digests import DigestIndex, InvalidIndex

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
digests = st.one_of(
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"sha256:{h}"),
    st.text(max_size=70),
)


@settings(max_examples=300)
@given(json_values)
def test_pubsub_envelopes(body: Any) -> None:
    try:
        delivery = unwrap_pubsub(body)
    except MalformedEvent as error:
        assert error.reason
    else:
        assert isinstance(delivery.data, bytes)


@settings(max_examples=300)
@given(json_values, st.text(max_size=12))
def test_push_payloads(document: Any, subdir: str) -> None:
    try:
        push = webhook.parse_push(document, subdir)
    except webhook.BadRequest as error:
        assert str(error)
    else:
        assert push.sha and push.ref


@settings(max_examples=200)
@given(json_values | st.fixed_dictionaries({"schema": st.just(1), "projects": json_values, "manifests": json_values}))
def test_index_documents(document: Any) -> None:
    try:
        index = DigestIndex.from_json(json.dumps(document).encode())
    except InvalidIndex as error:
        assert "index" in str(error)
    else:
        index.locate("gcr.io/a/b")


dmaps = st.dictionaries(
    digests, st.none() | st.text(max_size=10) | st.lists(st.text(max_size=12), max_size=3), max_size=4
)
image_entries = st.lists(
    st.fixed_dictionaries({"name": st.sampled_from(["a", "b/c", "A", "", "x"]), "dmap": st.none() | dmaps})
    | json_values,
    max_size=5,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(image_entries)
def test_images_files(tmp_path: Path, entries: Any) -> None:
    """Whatever an images.yaml holds, the load reports problems and keeps every valid entry."""
    root = tmp_path / "root"
    (root / "manifests" / "p").mkdir(parents=True, exist_ok=True)
    (root / "images" / "p").mkdir(parents=True, exist_ok=True)
    (root / "manifests" / "p" / "promoter-manifest.yaml").write_text(
        yaml.safe_dump({"registries": [{"name": "gcr.io/staging", "src": True}, {"name": "gcr.io/prod"}]})
    )
    (root / "images" / "p" / "images.yaml").write_text(yaml.safe_dump(entries, allow_unicode=True))
    loaded = manifests.load(root)
    if not isinstance(entries, list):
        # Anything but a list of images (or an empty file) refuses the whole set: nothing half-read.
        assert bool(loaded.fatal) == (entries is not None)
        return
    assert not loaded.fatal
    valid = {
        (entry["name"], d)
        for entry in entries
        if isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and entry["name"] in {"a", "b/c", "x"}
        and isinstance(entry.get("dmap"), dict)
        for d in entry["dmap"]
        if isinstance(d, str) and len(d) == 71 and d.startswith("sha256:") and set(d[7:]) <= set("0123456789abcdef")
    }
    kept = {(name, d) for name, dmap in loaded.projects["p"].images.items() for d in dmap}
    assert kept == valid
