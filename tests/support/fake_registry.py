"""A registry in a dict, for unit tests of the rules and the auditor: a ``ManifestSource`` (as
``function.registry.client.RegistryClient`` is one) holding manifests as bytes by (path, reference).

Answers are parsed as the client parses them (``content.parse_manifest``, named by the hash of their
bytes) and counted; what it does not hold is ``ManifestNotFound``. No HTTP, no retries, no faults: the
integration tests run on Debian's registry (tests/support/registry.py) for those. The builders write
what tests/support/registry.py pushes (images, indexes, cosign signatures, referrers), without blobs but
for the layers of signatures (signed by the tests' Sigstore instance, tests/support/signing.py).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from function.deadline import Deadline
from function.registry import content
from function.registry.client import ManifestNotFound
from tests.support import signing
from tests.support.registry import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    SIGNATURE_LAYERS,
)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}


class FakeRegistry:
    """Manifests by ``(path, reference)``: a path is ``host/repository``, a reference a digest or a tag."""

    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str], bytes] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, str]] = []
        """``(method, path, reference)`` of every call: GET for ``get_manifest``, HEAD for ``resolve_tag``,
        BLOB for ``get_blob``."""

    # --- ManifestSource ---------------------------------------------------------------------------------

    @property
    def calls(self) -> int:
        return len(self.requests)

    def get_manifest(
        self, host: str, repository: str, reference: str, *, deadline: Deadline | None = None
    ) -> content.Manifest:
        body = self._find("GET", host, repository, reference)
        return content.parse_manifest(body, None, digest_of(body))

    def resolve_tag(self, host: str, repository: str, tag: str, *, deadline: Deadline | None = None) -> str:
        return digest_of(self._find("HEAD", host, repository, tag))

    def get_blob(
        self, host: str, repository: str, digest: str, *, size: int, max_bytes: int, deadline: Deadline | None = None
    ) -> bytes:
        self.requests.append(("BLOB", f"{host}/{repository}", digest))
        try:
            return self.blobs[digest]
        except KeyError:
            raise ManifestNotFound(f"{host}/{repository}: no blob {digest}") from None

    def _find(self, method: str, host: str, repository: str, reference: str) -> bytes:
        path = f"{host}/{repository}"
        self.requests.append((method, path, reference))
        try:
            return self.manifests[path, reference]
        except KeyError:
            raise ManifestNotFound(f"{path}: no manifest {reference}") from None

    # --- what a test puts there ----------------------------------------------------------------------

    def put(self, path: str, manifest: dict[str, Any], tag: str | None = None) -> str:
        """Store ``manifest`` at ``path`` under its digest (and ``tag``); its digest."""
        body = json.dumps(manifest, indent=3).encode()
        digest = digest_of(body)
        self.manifests[path, digest] = body
        if tag is not None:
            self.manifests[path, tag] = body
        return digest

    def media_type(self, path: str, digest: str) -> str:
        return str(json.loads(self.manifests[path, digest])["mediaType"])

    def image(
        self,
        path: str,
        *,
        seed: str,
        tag: str | None = None,
        platform: tuple[str, str] = ("linux", "amd64"),
        oci: bool = False,
        subject: str | None = None,
    ) -> str:
        """A runnable one-layer image (OCI or Docker schema 2); with ``subject``, one naming that manifest
        of ``path`` as its OCI 1.1 subject: still runnable."""
        config = json.dumps(
            {"architecture": platform[1], "os": platform[0], "config": {"Labels": {"seed": seed}}, "rootfs": {}}
        ).encode()
        config_type, layer_type, manifest_type = (
            (OCI_CONFIG, OCI_LAYER, OCI_MANIFEST) if oci else (DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST)
        )
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": descriptor(config_type, config),
            "layers": [descriptor(layer_type, f"layer {seed}".encode())],
        }
        if subject is not None:
            manifest["subject"] = self._subject(path, subject)
        return self.put(path, manifest, tag)

    def index(self, path: str, children: list[str], *, tag: str | None = None) -> str:
        """An OCI image index over manifests already at ``path``."""
        manifests = [self._subject(path, child) | {"platform": {"os": "linux"}} for child in children]
        return self.put(path, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}, tag)

    def signature(self, path: str, subject: str, kind: str = "sig") -> str:
        """What cosign writes, tagged ``sha256-<hex>.<kind>``: an empty image config and payload layers
        (`.sig` and `.att` signed by the tests' Sigstore instance)."""
        config = json.dumps({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers"}}).encode()
        if kind in ("sig", "att"):
            layer = signing.layer(kind, subject)
            self.blobs[layer.digest] = layer.blob
            signed = descriptor(layer.media_type, layer.blob) | {"annotations": dict(layer.annotations)}
        else:
            payload = json.dumps({"critical": {"image": {"docker-manifest-digest": subject}}, "kind": kind}).encode()
            signed = descriptor(SIGNATURE_LAYERS[kind], payload)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [signed],
        }
        return self.put(path, manifest, subject.replace(":", "-") + f".{kind}")

    def referrer(self, path: str, subject: str, artifact_type: str = "application/vnd.example.sbom.v1+json") -> str:
        """An OCI 1.1 artifact whose ``subject`` is ``subject``, by digest and untagged."""
        payload = json.dumps({"subject": subject, "artifactType": artifact_type}).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": descriptor(OCI_EMPTY, b"{}"),
            "layers": [descriptor("application/json", payload)],
            "subject": self._subject(path, subject),
        }
        return self.put(path, manifest)

    def referrers_index(self, path: str, subject: str, referrers: list[str]) -> str:
        """The referrers fallback tag ``sha256-<hex>`` of ``subject``: an index of ``referrers``, each
        described with its artifactType (or its config's media type)."""
        entries = []
        for each in referrers:
            document = json.loads(self.manifests[path, each])
            artifact_type = document.get("artifactType") or document["config"]["mediaType"]
            entries.append(self._subject(path, each) | {"artifactType": artifact_type})
        manifest = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        return self.put(path, manifest, subject.replace(":", "-"))

    def _subject(self, path: str, digest: str) -> dict[str, Any]:
        body = self.manifests[path, digest]
        return {"mediaType": self.media_type(path, digest), "digest": digest, "size": len(body)}
