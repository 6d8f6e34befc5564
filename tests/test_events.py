"""Parsing references and event payloads: strict, precise, and never crashing on hostile input."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from function.events import Event, MalformedEvent, parse_payload, unwrap_pubsub
from function.reference import (
    InvalidReference,
    artifact_subject,
    is_loopback,
    parse_digest_reference,
    parse_tag_reference,
)

HEX = "a" * 64
AR = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images"


@pytest.mark.parametrize(
    ("text", "host", "repository"),
    [
        (f"{AR}/pause@sha256:{HEX}", "us-central1-docker.pkg.dev", "k8s-artifacts-prod/images/pause"),
        (f"127.0.0.1:5000/a/b@sha256:{HEX}", "127.0.0.1:5000", "a/b"),
        (f"gcr.io/k8s-artifacts-prod/x_y.z--w@sha256:{HEX}", "gcr.io", "k8s-artifacts-prod/x_y.z--w"),
        (f"localhost:5000/a@sha256:{HEX}", "localhost:5000", "a"),
        (f"[::1]:5000/a@sha256:{HEX}", "[::1]:5000", "a"),
    ],
)
def test_digest_references(text: str, host: str, repository: str) -> None:
    reference = parse_digest_reference(text)
    assert (reference.host, reference.repository, reference.digest) == (host, repository, f"sha256:{HEX}")


def test_hosts_are_normalized() -> None:
    reference = parse_digest_reference(f"US-CENTRAL1-Docker.PKG.dev:443/k8s-artifacts-prod/images/pause@sha256:{HEX}")
    assert reference.path == f"{AR}/pause"
    assert parse_tag_reference("LOCALHOST:5000/a:v1").host == "localhost:5000"
    assert parse_tag_reference("127.0.0.1:443/a:v1").host == "127.0.0.1:443"


def test_a_port_is_not_a_tag() -> None:
    reference = parse_tag_reference("127.0.0.1:5000/a/b:v1.2.3")
    assert (reference.host, reference.repository, reference.tag) == ("127.0.0.1:5000", "a/b", "v1.2.3")
    with pytest.raises(InvalidReference, match="no ':<tag>'"):
        parse_tag_reference("127.0.0.1:5000/a/b")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (f"{AR}/pause@sha256:{HEX.upper()}", "not a digest"),
        (f"{AR}/pause@sha256:{HEX[:-1]}", "not a digest"),
        (f"{AR}/pause@sha512:{HEX}", "not a digest"),
        (f"{AR}/Pause@sha256:{HEX}", "component 'Pause'"),
        (f"{AR}//pause@sha256:{HEX}", "component ''"),
        (f"library/pause@sha256:{HEX}", "not a registry host"),
        (f"pause@sha256:{HEX}", "no repository"),
        (f"exa_mple.com/pause@sha256:{HEX}", "not a valid registry host"),
        (f"gcr.io/{'a' * 260}@sha256:{HEX}", "limit is 255"),
    ],
)
def test_bad_digest_references(text: str, fragment: str) -> None:
    with pytest.raises(InvalidReference, match=fragment.replace("(", r"\(")):
        parse_digest_reference(text)


@pytest.mark.parametrize("tag", ["-x", ".x", "x" * 129, "a b", "ä"])
def test_bad_tags(tag: str) -> None:
    with pytest.raises(InvalidReference, match="not a valid tag"):
        parse_tag_reference(f"{AR}/pause:{tag}")


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ["127.0.0.1:5000", "127.9.9.9", "localhost:1", "[::1]:5000", "[::1]"])
    assert not any(is_loopback(h) for h in ["gcr.io", "10.0.0.1:5000", "localhost.example.com", "[::2]:1"])


def test_artifact_tags() -> None:
    assert artifact_subject(f"sha256-{HEX}.sig") == (f"sha256:{HEX}", "signature")
    assert artifact_subject(f"sha256-{HEX}.att") == (f"sha256:{HEX}", "attestation")
    assert artifact_subject(f"sha256-{HEX}.sbom") == (f"sha256:{HEX}", "sbom")
    assert artifact_subject(f"sha256-{HEX}.sigx") is None
    assert artifact_subject("v1.0") is None


def test_payload_with_both_references() -> None:
    event = parse_payload(
        json.dumps({"action": "INSERT", "digest": f"{AR}/pause@sha256:{HEX}", "tag": f"{AR}/pause:3.9"})
    )
    assert event == Event("INSERT", f"{AR}/pause", f"sha256:{HEX}", "3.9")


def test_tag_only_and_digest_only_payloads() -> None:
    assert parse_payload(json.dumps({"action": "DELETE", "tag": f"{AR}/pause:3.9"})).digest is None
    assert parse_payload(json.dumps({"action": "INSERT", "digest": f"{AR}/pause@sha256:{HEX}"})).tag is None


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ("not json", "not JSON"),
        ("[1]", "JSON list"),
        ('{"action": "UPDATE", "tag": "gcr.io/a/b:c"}', "INSERT or DELETE"),
        ('{"action": "INSERT"}', "neither a digest nor a tag"),
        ('{"action": "INSERT", "tag": 5}', "tag must be a string"),
        ('{"action": "INSERT", "digest": "gcr.io/a/b@sha256:00"}', "digest: 'sha256:00'"),
        (
            json.dumps({"action": "INSERT", "digest": f"gcr.io/a/b@sha256:{HEX}", "tag": "gcr.io/a/c:1"}),
            "different repositories",
        ),
        ("{" + " " * 70000 + "}", "more than"),
    ],
)
def test_malformed_payloads(payload: str, fragment: str) -> None:
    with pytest.raises(MalformedEvent, match=fragment):
        parse_payload(payload)


def test_malformed_events_keep_what_was_readable() -> None:
    try:
        parse_payload(json.dumps({"action": "UPDATE", "digest": f"{AR}/pause@sha256:{HEX}", "tag": f"{AR}/pause:1"}))
    except MalformedEvent as error:
        assert (error.action, error.path, error.digest, error.tag) == ("UPDATE", f"{AR}/pause", f"sha256:{HEX}", "1")
    try:
        parse_payload(json.dumps({"action": "INSERT", "digest": f"{AR}/a@sha256:{HEX}", "tag": f"{AR}/b:1"}))
    except MalformedEvent as error:
        assert (error.action, error.path, error.digest, error.tag) == ("INSERT", None, f"sha256:{HEX}", "1")


def test_empty_references_count_as_absent() -> None:
    event = parse_payload(json.dumps({"action": "INSERT", "digest": f"{AR}/pause@sha256:{HEX}", "tag": ""}))
    assert (event.digest, event.tag) == (f"sha256:{HEX}", None)
    with pytest.raises(MalformedEvent, match="neither"):
        parse_payload(json.dumps({"action": "INSERT", "digest": "", "tag": ""}))


def test_pubsub_envelopes() -> None:
    data = base64.b64encode(b'{"action": "INSERT"}').decode()
    delivery = unwrap_pubsub({"message": {"data": data, "messageId": "42"}, "subscription": "s"})
    assert (delivery.data, delivery.message_id) == (b'{"action": "INSERT"}', "42")
    with pytest.raises(MalformedEvent, match="base64"):
        unwrap_pubsub({"message": {"data": "!!!"}})
    with pytest.raises(MalformedEvent, match="neither"):
        unwrap_pubsub({"data": data})
    undecoded = json.dumps({"message": {"data": data, "messageId": "7"}}).encode()
    assert unwrap_pubsub(undecoded).message_id == "7"
    with pytest.raises(MalformedEvent, match="not JSON"):
        unwrap_pubsub(b"\x00")


# --- property-based: no input crashes the parsers ---------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
reference_like = st.builds(
    "{}{}{}{}".format,
    st.sampled_from(["gcr.io/", "127.0.0.1:5000/", "us-docker.pkg.dev/", "", "[::1]/", "a:b/"]),
    st.text(alphabet="abc/._-:@AZ09", max_size=30),
    st.sampled_from(["@sha256:", ":", "@", ""]),
    st.text(alphabet="0123456789abcdefABCDEF-_.:", max_size=70),
)


@settings(max_examples=400)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_bytes_are_malformed_or_events(raw: bytes | str) -> None:
    try:
        event = parse_payload(raw)
    except MalformedEvent as error:
        assert error.reason
    else:
        assert event.action in {"INSERT", "DELETE"}


@settings(max_examples=400)
@given(
    st.sampled_from(["INSERT", "DELETE", "insert", None, 1]), reference_like | json_values, reference_like | json_values
)
def test_arbitrary_payload_objects(action: object, digest: object, tag: object) -> None:
    document = {"action": action, "digest": digest, "tag": tag}
    try:
        event = parse_payload(json.dumps(document))
    except MalformedEvent as error:
        assert error.reason
    else:
        # Whatever was accepted round-trips: the references rebuild from the parsed fields.
        if event.digest is not None:
            assert parse_digest_reference(f"{event.path}@{event.digest}").path == event.path
        if event.tag is not None:
            assert parse_tag_reference(f"{event.path}:{event.tag}").path == event.path


@settings(max_examples=300)
@given(reference_like)
def test_reference_parsers_raise_only_reference_errors(text: str) -> None:
    for parse in (parse_digest_reference, parse_tag_reference):
        try:
            reference = parse(text)
        except InvalidReference:
            continue
        assert reference.path.count("/") >= 1
        assert len(reference.path) <= 255
