"""Bytes only by their digest (issue 16): a body that matches a listed digest only through a schema 1 JWS
payload is never read as what it declares, so it can never name children of that digest."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from function.auditor import Auditor
from function.index.resolve import resolve
from function.index.source import FixedIndex
from function.registry import content
from function.registry.content import OCI_INDEX
from tests.support import registry as reg
from tests.support import scenario
from tests.support.auditing import client, decide, load, promotion, publish
from tests.support.proxy import LocalAnswer, RegistryProxy, manifest_answer
from tests.test_soundness import PAUSE

__all__ = ["promotion"]  # the fixture, shared in tests/support/auditing.py

ATTACKER = "sha256:" + "e" * 64


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def impostor(real_list: bytes, children: list[str]) -> bytes:
    """An "image index" of ``children`` whose JWS payload (formatLength 0, formatTail) is ``real_list``."""
    protected = {"formatLength": 0, "formatTail": _b64url(real_list)}
    document = {
        "schemaVersion": 1,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": reg.OCI_MANIFEST, "digest": child, "size": 1} for child in children],
        "signatures": [{"protected": _b64url(json.dumps(protected).encode()), "signature": "c2ln"}],
    }
    return json.dumps(document).encode()


def test_a_body_named_only_through_a_jws_payload_must_be_schema_1() -> None:
    real = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    body = impostor(real, [ATTACKER])
    listed = content.digest_of(real)
    with pytest.raises(content.ContentMismatch, match="JWS payload"):
        content.verified(body, listed)
    # Were it parsed all the same, it would be by its payload, and never with the declared children.
    with pytest.raises(content.InvalidManifest):
        content.parse_manifest(body, OCI_INDEX, listed)


@pytest.mark.registry
def test_an_impostor_list_names_no_child_in_the_audit_or_the_build(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    host, path = registry_proxy.host, f"{registry_proxy.host}/{PAUSE}"
    pause = promotion.artifacts["pause"][0].digest
    publish(tmp_path, promotion, "commit-1", tmp_path / "index.json", offline=True)
    index = load(tmp_path / "index.json")
    assert pause in index.unresolved()
    attacker = reg.push_image(host, PAUSE, seed="impostor-child")
    _, real = reg.fetch_manifest(host, PAUSE, pause)
    crafted = impostor(real, [attacker])
    assert content.digest_of(real) == pause != content.digest_of(crafted)

    def answer(method: str, where: str, query: str) -> LocalAnswer | None:
        return manifest_answer(OCI_INDEX, crafted) if where.endswith(f"/manifests/{pause}") else None

    registry_proxy.serve(answer)
    auditor = Auditor(FixedIndex(index), client(index.registry_hosts()))
    verdict = decide(auditor, path, attacker)
    assert (verdict.verdict, verdict.basis) != ("VERIFIED", "child"), verdict
    assert verdict.verdict == "RETRY", verdict
    location = index.locate(path)
    assert location is not None and location.image is not None
    assert auditor.learned.parents_of(location.image, attacker) == []
    # Publication resolves nothing from such bytes.
    resolved, summary = resolve(index, client(index.registry_hosts()), only=[pause])
    assert pause not in resolved.manifests and summary.failed == 1
