"""Runnable is what a runtime runs (issue 16): a manifest with an image config and a filesystem layer is an
image whatever its ``artifactType`` says, and an index under the referrers fallback tag is judged by its
entries' own manifests, never by what its descriptors claim."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from function.auditor import Auditor
from function.index.publish import read_index
from function.registry.content import OCI_MANIFEST, parse_manifest
from function.storage.uri import open_store
from function.sweep.runner import Sweep
from tests.support import registry as reg
from tests.support import scenario
from tests.support.auditing import audited, client, decide, fallback_tag, outcome, promotion
from tests.support.proxy import RegistryProxy
from tests.test_soundness import PAUSE

__all__ = ["promotion"]  # the fixture, shared in tests/support/auditing.py

ENTRYPOINT_IMAGE_ARTIFACT = "application/vnd.example.innocent.v1+json"
DIGEST = "sha256:" + "a" * 64


def _descriptor(media_type: str, digest: str = DIGEST) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": 1}


def _facts(document: dict[str, Any]) -> Any:
    return parse_manifest(json.dumps(document).encode(), None, DIGEST).facts


@pytest.mark.parametrize(
    "layer",
    [
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ],
)
def test_an_image_config_and_a_filesystem_layer_run_whatever_the_artifact_type(layer: str) -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ENTRYPOINT_IMAGE_ARTIFACT,
        "config": _descriptor("application/vnd.oci.image.config.v1+json"),
        "layers": [_descriptor("application/json"), _descriptor(layer)],
        "subject": _descriptor(OCI_MANIFEST),
    }
    assert _facts(document).runnable
    # Without a filesystem layer, or with a config no runtime runs, it is an artifact.
    assert _facts(document | {"layers": [_descriptor("application/json")]}).artifact
    assert _facts(document | {"config": _descriptor("application/vnd.oci.empty.v1+json")}).artifact


def test_an_index_entry_with_a_platform_is_never_an_artifact() -> None:
    entry = _descriptor(OCI_MANIFEST) | {"artifactType": ENTRYPOINT_IMAGE_ARTIFACT}
    index = {"schemaVersion": 2, "mediaType": reg.OCI_INDEX, "manifests": [entry]}
    assert _facts(index).artifact and _facts(index).entries == (DIGEST,)
    placed = index | {"manifests": [entry | {"platform": {"os": "linux", "architecture": "amd64"}}]}
    assert _facts(placed).runnable


def push_runnable_artifact(host: str, repo: str, subject: str, *, seed: str) -> str:
    """An image a runtime runs (image config with an Entrypoint, a tar+gzip layer) that also carries an
    artifactType and a promoted subject, pushed untagged."""
    layer = reg._tar_gz({"run.sh": seed.encode()})
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/run.sh"]},
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    ).encode()
    media_type, body = reg.fetch_manifest(host, repo, subject)
    manifest = {
        "schemaVersion": 2,
        "mediaType": reg.OCI_MANIFEST,
        "artifactType": ENTRYPOINT_IMAGE_ARTIFACT,
        "config": reg._descriptor(reg.OCI_CONFIG, config, reg.push_blob(host, repo, config)),
        "layers": [reg._descriptor(reg.OCI_LAYER, layer, reg.push_blob(host, repo, layer))],
        "subject": reg._descriptor(media_type, body, subject),
    }
    return reg.push_manifest(host, repo, manifest)


def push_index_raw(host: str, repo: str, entries: list[dict[str, Any]], tag: str) -> str:
    return reg.push_manifest(host, repo, {"schemaVersion": 2, "mediaType": reg.OCI_INDEX, "manifests": entries}, tag)


def entry_of(host: str, repo: str, digest: str, **extra: Any) -> dict[str, Any]:
    media_type, body = reg.fetch_manifest(host, repo, digest)
    document = json.loads(body)
    artifact_type = document.get("artifactType") or document["config"]["mediaType"]
    return reg._descriptor(media_type, body, digest) | {"artifactType": artifact_type} | extra


def disguised_and_wrapped(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy, seed: str
) -> tuple[Auditor, str, str, str, str]:
    """An auditor of the promotion, pause's path and digest, a runnable artifact of pause, and an index of
    it under pause's referrers fallback tag."""
    auditor = audited(tmp_path, promotion)
    host = registry_proxy.host
    pause = promotion.artifacts["pause"][0].digest
    disguised = push_runnable_artifact(host, PAUSE, pause, seed=seed)
    wrapped = push_index_raw(host, PAUSE, [entry_of(host, PAUSE, disguised)], fallback_tag(pause))
    return auditor, f"{host}/{PAUSE}", pause, disguised, wrapped


@pytest.mark.registry
def test_a_runnable_image_with_an_artifact_type_is_no_referrer(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    auditor, path, pause, disguised, wrapped = disguised_and_wrapped(tmp_path, promotion, registry_proxy, "disguised")
    assert outcome(decide(auditor, path, disguised)) == ("REJECTED", "bad_artifact", 1)
    # The index of it under the fallback tag: each entry's manifest is fetched and judged (remembered here).
    assert outcome(decide(auditor, path, wrapped, fallback_tag(pause))) == ("REJECTED", "bad_artifact", 1)


@pytest.mark.registry
def test_the_fallback_tag_fetches_each_entry_and_refuses_a_platform(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    auditor, path, pause, _, wrapped = disguised_and_wrapped(tmp_path, promotion, registry_proxy, "disguised-2")
    host = registry_proxy.host
    # Not yet known to this auditor: the index, then its entry.
    assert outcome(decide(auditor, path, wrapped, fallback_tag(pause))) == ("REJECTED", "bad_artifact", 2)
    # A genuine artifact, described with a platform: never an artifact entry, decided without the entry.
    sbom = next(a.digest for a in promotion.artifacts["pause"] if a.kind == "referrer")
    platform = {"platform": {"os": "linux", "architecture": "amd64"}}
    placed = push_index_raw(host, PAUSE, [entry_of(host, PAUSE, sbom, **platform)], fallback_tag(pause))
    assert outcome(decide(auditor, path, placed, fallback_tag(pause))) == ("REJECTED", "bad_artifact", 1)
    # The genuine index: its one entry fetched once, then every region decides it from memory.
    genuine = reg.push_referrers_index(host, PAUSE, pause, [sbom])
    assert outcome(decide(auditor, path, genuine, fallback_tag(pause))) == ("VERIFIED", "referrer", 2)
    other = f"{host}/europe-west1/images/pause"
    assert outcome(decide(auditor, other, genuine, fallback_tag(pause))) == ("VERIFIED", "referrer", 0)


@pytest.mark.registry
def test_the_sweep_reports_a_runnable_referrers_index(
    tmp_path: Path, promotion: scenario.Promotion, registry_proxy: RegistryProxy
) -> None:
    audited(tmp_path, promotion)  # publishes the index
    index = read_index(open_store(str(tmp_path / "index.json")))
    assert index is not None
    host = registry_proxy.host
    pause = promotion.artifacts["pause"][0].digest
    disguised = push_runnable_artifact(host, PAUSE, pause, seed="disguised-3")
    wrapped = push_index_raw(host, PAUSE, [entry_of(host, PAUSE, disguised)], fallback_tag(pause))
    result = Sweep(index, registry_factory=client, sleep=lambda seconds: None).run()
    found = {(f.verdict, f.reason, f.tag) for f in result.findings if f.digest == wrapped}
    assert found == {("REJECTED", "bad_artifact", fallback_tag(pause))}
