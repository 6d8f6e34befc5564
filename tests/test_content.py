"""The OCI content model: real manifest shapes parse, and untrusted bytes never raise anything unexpected."""

import base64
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from function.reference import is_digest
from function.registry import content
from function.registry.content import InvalidManifest, parse_manifest

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def descriptor(media_type: str, digest: str, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest, "size": 123, **extra}


def encode(document: object) -> bytes:
    return json.dumps(document).encode()


DOCKER_LIST = {
    "schemaVersion": 2,
    "mediaType": content.DOCKER_MANIFEST_LIST,
    "manifests": [
        descriptor(content.DOCKER_MANIFEST, D1, platform={"os": "linux", "architecture": "amd64"}),
        descriptor(content.DOCKER_MANIFEST, D2, platform={"os": "linux", "architecture": "arm64"}),
    ],
}
OCI_IMAGE = {
    "schemaVersion": 2,
    "mediaType": content.OCI_MANIFEST,
    "config": descriptor("application/vnd.oci.image.config.v1+json", D1),
    "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", D2)],
}


def test_docker_manifest_list_lists_its_children_in_order():
    body = encode(DOCKER_LIST)
    manifest = parse_manifest(body, None, content.digest_of(body))
    assert manifest.media_type == content.DOCKER_MANIFEST_LIST
    assert manifest.children == (D1, D2)
    assert manifest.platforms == ("linux/amd64", "linux/arm64")
    assert manifest.is_index
    assert manifest.subject is None
    assert manifest.size == len(body)
    assert manifest.digest == content.digest_of(body)


@pytest.mark.parametrize(
    ("platform", "shown"),
    [
        ({"os": "linux", "architecture": "arm", "variant": "v7"}, "linux/arm/v7"),
        (
            {"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.5458"},
            "windows/amd64 (10.0.17763.5458)",
        ),
        ({"os": "linux", "architecture": "amd64", "variant": ""}, "linux/amd64"),
        # Not plain words: not echoed to a terminal.
        ({"os": "linux\u001b[2J", "architecture": "amd64"}, ""),
        ({"os": "linux", "architecture": "amd64", "os.version": "1 2"}, "linux/amd64"),
        ({"os": "linux"}, ""),
        ({"os": "linux", "architecture": 64}, ""),
        ("linux/amd64", ""),
        (None, ""),
    ],
)
def test_each_childs_platform_is_shown_as_its_descriptor_names_it(platform, shown):
    entries = [descriptor(content.OCI_MANIFEST, D1, platform=platform), descriptor(content.OCI_MANIFEST, D2)]
    body = encode({"schemaVersion": 2, "mediaType": content.OCI_INDEX, "manifests": entries})
    assert parse_manifest(body, None, content.digest_of(body)).platforms == (shown, "")


def test_oci_index_without_media_type_field_takes_it_from_content_type():
    index = {"schemaVersion": 2, "manifests": [descriptor(content.OCI_MANIFEST, D3)]}
    manifest = parse_manifest(encode(index), content.OCI_INDEX + "; charset=utf-8", D1)
    assert manifest.media_type == content.OCI_INDEX
    assert manifest.children == (D3,)
    assert manifest.is_index


def test_body_media_type_wins_over_content_type():
    manifest = parse_manifest(encode(OCI_IMAGE), "application/json", D1)
    assert manifest.media_type == content.OCI_MANIFEST
    assert manifest.children == ()
    assert not manifest.is_index
    assert manifest.facts == content.Facts(is_index=False, runnable=True, subject=None, cosign_kind=None)


def test_docker_image_manifest():
    image = OCI_IMAGE | {"mediaType": content.DOCKER_MANIFEST}
    manifest = parse_manifest(encode(image), content.DOCKER_MANIFEST, D1)
    assert (manifest.media_type, manifest.children, manifest.subject) == (content.DOCKER_MANIFEST, (), None)


def test_an_artifact_type_makes_an_artifact():
    # Of a manifest without a filesystem layer: runtimes ignore artifactType (see test_soundness_runnable).
    referrer = OCI_IMAGE | {
        "artifactType": "application/spdx+json",
        "layers": [descriptor("application/spdx+json", D2)],
        "subject": descriptor(content.OCI_INDEX, D3),
    }
    manifest = parse_manifest(encode(referrer), None, D1)
    assert (manifest.subject, manifest.facts.artifact, manifest.facts.runnable) == (D3, True, False)


def test_a_config_that_no_runtime_runs_makes_an_artifact():
    referrer = OCI_IMAGE | {
        "config": descriptor("application/vnd.dev.cosign.artifact.sig.v1+json", D2),
        "subject": descriptor(content.OCI_MANIFEST, D3),
    }
    assert parse_manifest(encode(referrer), None, D1).facts.artifact


@pytest.mark.parametrize("config", sorted(content.RUNNABLE_CONFIGS))
def test_a_runnable_image_with_a_subject_is_no_artifact(config):
    image = OCI_IMAGE | {"config": descriptor(config, D2), "subject": descriptor(content.OCI_MANIFEST, D3)}
    facts = parse_manifest(encode(image), None, D1).facts
    assert (facts.runnable, facts.subject) == (True, D3)


@pytest.mark.parametrize(
    ("layer_types", "kind"),
    [
        (["application/vnd.dev.cosign.simplesigning.v1+json"] * 2, "sig"),
        (["application/vnd.dsse.envelope.v1+json"], "att"),
        (["text/spdx"], "sbom"),
        (["spdx+json"], "sbom"),
        (["application/vnd.cyclonedx+json"], "sbom"),
        (["application/vnd.syft+json"], "sbom"),
        (["application/vnd.dev.cosign.simplesigning.v1+json", "application/vnd.oci.image.layer.v1.tar+gzip"], None),
        (["application/vnd.oci.image.layer.v1.tar+gzip"], None),
        ([], None),
    ],
)
def test_cosign_kind_is_read_from_every_layer(layer_types, kind):
    manifest = OCI_IMAGE | {"layers": [descriptor(t, D2) for t in layer_types]}
    assert parse_manifest(encode(manifest), None, D1).facts.cosign_kind == kind


@pytest.mark.parametrize(
    ("entries", "artifact"),
    [
        ([descriptor(content.OCI_MANIFEST, D2, artifactType="application/vnd.example+json")], True),
        ([], True),
        ([descriptor(content.OCI_MANIFEST, D2)], False),
        ([descriptor(content.OCI_MANIFEST, D2, artifactType="application/vnd.oci.image.config.v1+json")], False),
        ([descriptor(content.OCI_INDEX, D2, artifactType="application/vnd.example+json")], False),
    ],
)
def test_an_index_is_an_artifact_when_every_entry_is_described_as_one(entries, artifact):
    index = {"schemaVersion": 2, "mediaType": content.OCI_INDEX, "manifests": entries}
    facts = parse_manifest(encode(index), None, D1).facts
    assert (facts.is_index, facts.artifact) == (True, artifact)


def test_index_may_have_a_subject_too():
    index = {"mediaType": content.OCI_INDEX, "manifests": [], "subject": descriptor(content.OCI_MANIFEST, D2)}
    manifest = parse_manifest(encode(index), None, D1)
    assert (manifest.children, manifest.subject) == ((), D2)


def signed_schema1() -> tuple[bytes, bytes]:
    """A signed schema 1 manifest as libtrust writes it, and the payload its digest is computed over."""
    payload = json.dumps({"schemaVersion": 1, "name": "pause", "tag": "0.8.0", "fsLayers": []}, indent=3)
    cut = payload.rindex("\n}")
    protected = {"formatLength": cut, "formatTail": base64.urlsafe_b64encode(payload[cut:].encode()).decode()}
    signature = {
        "header": {"alg": "ES256"},
        "signature": "c2ln",
        "protected": base64.urlsafe_b64encode(json.dumps(protected).encode()).decode().rstrip("="),
    }
    signed = payload[:cut] + ',\n   "signatures": ' + json.dumps([signature]) + "\n}"
    return signed.encode(), payload.encode()


def test_signed_schema1_is_a_runnable_single_manifest_named_by_its_payload():
    body, payload = signed_schema1()
    digest = content.verified(body, content.digest_of(payload))
    assert digest == content.digest_of(payload) != content.digest_of(body)
    assert content.verified(body, None) == digest
    for label in (content.DOCKER_MANIFEST_V1_SIGNED, "application/json", None):
        manifest = parse_manifest(body, label, digest)
        assert (manifest.media_type, manifest.children, manifest.is_index, manifest.facts.runnable) == (
            content.DOCKER_MANIFEST_V1_SIGNED,
            (),
            False,
            True,
        )


def test_other_bodies_are_named_by_the_hash_of_their_bytes_whatever_their_label():
    body = encode(OCI_IMAGE)
    assert content.verified(body, content.digest_of(body)) == content.digest_of(body)
    assert content.verified(b"not even json", None) == content.digest_of(b"not even json")
    with pytest.raises(content.ContentMismatch):
        content.verified(body + b" ", content.digest_of(body))


def test_a_schema1_label_does_not_make_a_body_schema1():
    unlabelled = {key: value for key, value in OCI_IMAGE.items() if key != "mediaType"}
    with pytest.raises(InvalidManifest, match="the body is no schema 1 manifest"):
        parse_manifest(encode(unlabelled), content.DOCKER_MANIFEST_V1_SIGNED, D1)
    labelled = parse_manifest(encode(OCI_IMAGE), content.DOCKER_MANIFEST_V1_SIGNED, D1)
    assert labelled.media_type == content.OCI_MANIFEST


def test_accept_names_index_types_first_and_every_main_type():
    accepted = [media_type.strip() for media_type in content.ACCEPT.split(",")]
    assert accepted[:2] == [content.OCI_INDEX, content.DOCKER_MANIFEST_LIST]
    assert {content.OCI_MANIFEST, content.DOCKER_MANIFEST} <= set(accepted)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"{", None, "not valid JSON"),
        (b"\xff\xfe\x00", None, "not valid JSON"),
        (b"[]", None, "must be a JSON object, not a list"),
        (b"[" * 100_000, None, "nested too deeply"),
        (b"{}", None, "no mediaType field and the registry sent no Content-Type"),
        (b'{"mediaType": 7}', None, "mediaType must be a string, not a number"),
        (b'{"mediaType": "text/html"}', None, "unsupported manifest media type 'text/html'"),
        (b"{}", "application/octet-stream", "unsupported manifest media type"),
        (encode({"mediaType": content.OCI_INDEX}), None, "manifests must be a list, not null"),
        (encode({"mediaType": content.OCI_INDEX, "manifests": {}}), None, "must be a list, not an object"),
        (encode({"mediaType": content.OCI_INDEX, "manifests": ["x"]}), None, "manifests[0] must be a descriptor"),
        (
            encode({"mediaType": content.DOCKER_MANIFEST_LIST, "manifests": [descriptor("x", "sha256:" + "A" * 64)]}),
            None,
            "manifests[0].digest must be 'sha256:' and 64 lowercase hex digits",
        ),
        (
            encode({"mediaType": content.OCI_INDEX, "manifests": [descriptor("x", "sha512:" + "a" * 128)]}),
            None,
            "manifests[0].digest",
        ),
        (encode(OCI_IMAGE | {"subject": descriptor("x", "sha256:abc")}), None, "subject.digest must be"),
        (encode(OCI_IMAGE | {"subject": "sha256:" + "a" * 64}), None, "subject must be a descriptor object"),
        (encode(OCI_IMAGE | {"artifactType": ["x"]}), None, "artifactType must be a string, not a list"),
    ],
)
def test_invalid_manifests_are_rejected_with_a_precise_message(body, content_type, message):
    with pytest.raises(InvalidManifest, match=re.escape(message)):
        parse_manifest(body, content_type, D1)


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b'{"schemaVersion": 1, "signatures": [{"protected": "!!!"}]}',
        b'{"schemaVersion": 1, "signatures": [{"protected": "e30"}]}',
        b'{"schemaVersion": 1, "signatures": ["x"]}',
    ],
)
def test_malformed_schema1_signatures_name_nothing_but_their_bytes(body):
    assert content.verified(body, None) == content.digest_of(body)
    with pytest.raises(content.ContentMismatch):
        content.verified(body, D1)


MEDIA_TYPES = st.sampled_from(
    [
        content.OCI_INDEX,
        content.DOCKER_MANIFEST_LIST,
        content.OCI_MANIFEST,
        content.DOCKER_MANIFEST,
        content.DOCKER_MANIFEST_V1_SIGNED,
    ]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)
DIGESTS = st.one_of(st.just(D1), st.text(max_size=80), st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True))
DESCRIPTORS = st.one_of(JSON, st.fixed_dictionaries({"digest": DIGESTS, "mediaType": st.text()}))
MANIFEST_LIKE = st.fixed_dictionaries(
    {"mediaType": MEDIA_TYPES},
    optional={
        "manifests": st.one_of(JSON, st.lists(DESCRIPTORS, max_size=4)),
        "subject": DESCRIPTORS,
        "artifactType": JSON,
        "config": DESCRIPTORS,
        "layers": st.one_of(JSON, st.lists(DESCRIPTORS, max_size=4)),
        "schemaVersion": st.sampled_from([1, 2]),
        "signatures": JSON,
    },
)
PLATFORMS = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {"os": st.text(max_size=40), "architecture": st.text(max_size=40)},
        optional={"variant": JSON, "os.version": JSON},
    ),
)
# What may reach a terminal: "" or plain words, os/architecture[/variant][ (os.version)].
_SHOWN_PLATFORM = re.compile(
    r"(?:[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*){1,2}(?: \([A-Za-z0-9._-]+\))?)?"
)
CONTENT_TYPES = st.one_of(st.none(), MEDIA_TYPES, st.text(max_size=40))


def parse_or_reject(body: bytes, content_type: str | None) -> None:
    try:
        manifest = parse_manifest(body, content_type, D1)
    except InvalidManifest:
        return
    assert all(is_digest(child) for child in manifest.children)
    assert manifest.subject is None or is_digest(manifest.subject)
    assert manifest.is_index == (manifest.media_type in content.INDEX_MEDIA_TYPES)
    assert manifest.facts.cosign_kind in (None, *content.COSIGN_LAYERS)
    assert len(manifest.platforms) == (len(manifest.children) if manifest.is_index else 0)
    assert all(_SHOWN_PLATFORM.fullmatch(platform) for platform in manifest.platforms)


@given(st.binary(max_size=2000), CONTENT_TYPES)
def test_arbitrary_bytes_parse_or_raise_invalid_manifest(body, content_type):
    parse_or_reject(body, content_type)


@given(JSON, CONTENT_TYPES)
def test_arbitrary_json_parses_or_raises_invalid_manifest(document, content_type):
    parse_or_reject(encode(document), content_type)


@settings(max_examples=300)
@given(MANIFEST_LIKE, CONTENT_TYPES)
def test_manifest_shaped_json_parses_or_raises_invalid_manifest(document, content_type):
    parse_or_reject(encode(document), content_type)


@given(st.one_of(st.binary(max_size=500), MANIFEST_LIKE.map(encode)))
def test_the_digest_of_arbitrary_bytes_is_a_digest_or_a_mismatch(body):
    assert is_digest(content.verified(body, None))
    try:
        content.verified(body, D1)
    except content.ContentMismatch:
        return


@given(st.lists(PLATFORMS, max_size=4))
def test_arbitrary_platforms_are_shown_as_plain_words_or_not_at_all(platforms):
    entries = [descriptor(content.OCI_MANIFEST, D1, platform=platform) for platform in platforms]
    parse_or_reject(encode({"schemaVersion": 2, "mediaType": content.OCI_INDEX, "manifests": entries}), None)


@given(st.lists(st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True), max_size=5), st.booleans())
def test_every_valid_index_keeps_its_children(children, oci):
    media_type = content.OCI_INDEX if oci else content.DOCKER_MANIFEST_LIST
    index = {"schemaVersion": 2, "mediaType": media_type, "manifests": [descriptor("x", d) for d in children]}
    assert parse_manifest(encode(index), None, D1).children == tuple(children)
