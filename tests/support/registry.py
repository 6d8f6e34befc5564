"""A real OCI registry for tests: Debian's docker-registry (CNCF distribution 2.8) on loopback.

`RegistryServer` starts and stops one registry; the push helpers speak the distribution API over plain
HTTP so tests build real images, manifest lists, OCI indexes, cosign-style signatures and OCI 1.1
referrers. Load as a pytest plugin (`-p tests.support.registry`) for the session-scoped `registry` fixture.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from function.signing.layers import Layer
from tests.support import signing
from tests.support.process import LoopbackProcess

REGISTRY_BINARY = "/usr/bin/docker-registry"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ACCEPT_ALL = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

# Media types cosign gives the single layer of a signature, attestation and SBOM.
SIGNATURE_LAYERS = {
    "sig": "application/vnd.dev.cosign.simplesigning.v1+json",
    "att": "application/vnd.dsse.envelope.v1+json",
    "sbom": "text/spdx+json",
}

HTTP_TIMEOUT = 10.0


class RegistryServer(LoopbackProcess):
    """One docker-registry process on 127.0.0.1:<free port>, storing into its own temporary folder."""

    name = "docker-registry"
    ready_path = "/v2/"

    def __init__(self, binary: str = REGISTRY_BINARY) -> None:
        super().__init__()
        self.binary = binary

    def command(self) -> list[str]:
        config = self.workdir / "config.yml"
        config.write_text(_config_yaml(self.workdir / "storage", self.port))
        return [self.binary, "serve", str(config)]


def _config_yaml(storage: Path, port: int) -> str:
    return f"""\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


# --- pushing -------------------------------------------------------------------------------------------


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(host: str, repo: str, data: bytes) -> str:
    """Monolithic upload: POST to open an upload session, PUT the bytes with their digest. A blob the
    repository already holds is not sent again (the tests push the same seeded content many times)."""
    digest = digest_of(data)
    if requests.head(f"http://{host}/v2/{repo}/blobs/{digest}", timeout=HTTP_TIMEOUT).status_code == 200:
        return digest
    opened = requests.post(f"http://{host}/v2/{repo}/blobs/uploads/", timeout=HTTP_TIMEOUT)
    _expect(opened, 202)
    location = opened.headers["Location"]
    if location.startswith("/"):
        location = f"http://{host}{location}"
    put = requests.put(
        location,
        params={"digest": digest},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=HTTP_TIMEOUT,
    )
    _expect(put, 201)
    return digest


def push_manifest(host: str, repo: str, manifest: dict[str, Any], reference: str | None = None) -> str:
    """PUT a manifest under `reference` (a tag), or under its own digest when `reference` is None."""
    body = json.dumps(manifest, indent=3).encode()
    digest = digest_of(body)
    put = requests.put(
        f"http://{host}/v2/{repo}/manifests/{reference or digest}",
        data=body,
        headers={"Content-Type": manifest["mediaType"]},
        timeout=HTTP_TIMEOUT,
    )
    _expect(put, 201)
    assert put.headers.get("Docker-Content-Digest") == digest, "the registry stored different bytes than sent"
    return digest


def push_raw_manifest(host: str, repo: str, body: bytes, media_type: str, reference: str) -> str:
    """PUT these exact manifest bytes under `reference`."""
    put = requests.put(
        f"http://{host}/v2/{repo}/manifests/{reference}",
        data=body,
        headers={"Content-Type": media_type},
        timeout=HTTP_TIMEOUT,
    )
    _expect(put, 201)
    return digest_of(body)


def push_image(
    host: str,
    repo: str,
    *,
    tag: str | None = None,
    platform: tuple[str, str] = ("linux", "amd64"),
    oci: bool = False,
    seed: str | None = None,
    subject: str | None = None,
) -> str:
    """Push a one-layer image (OCI or Docker schema 2) and return its manifest digest.

    Images differ by `seed` (random when omitted), so each call makes a new digest unless a seed repeats.
    With `subject`, the image names that manifest (of `repo`) as its OCI 1.1 subject: still runnable.
    """
    seed = seed or uuid.uuid4().hex
    os_name, architecture = platform
    layer = _tar_gz({"seed.txt": seed.encode()})
    config = json.dumps(
        {
            "architecture": architecture,
            "os": os_name,
            "config": {"Labels": {"seed": seed}},
            "rootfs": {"type": "layers", "diff_ids": [digest_of(gzip.decompress(layer))]},
        }
    ).encode()
    config_type, layer_type, manifest_type = (
        (OCI_CONFIG, OCI_LAYER, OCI_MANIFEST) if oci else (DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST)
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": _descriptor(config_type, config, push_blob(host, repo, config)),
        "layers": [_descriptor(layer_type, layer, push_blob(host, repo, layer))],
    }
    if subject is not None:
        manifest["subject"] = _subject(host, repo, subject)
    return push_manifest(host, repo, manifest, tag)


def push_index(host: str, repo: str, children: list[str], *, tag: str | None = None, oci: bool = True) -> str:
    """Push an OCI image index (or a Docker manifest list) over images already pushed to `repo`."""
    manifests = []
    for child in children:
        media_type, body = fetch_manifest(host, repo, child)
        manifests.append(_descriptor(media_type, body, child) | {"platform": _platform_of(host, repo, body)})
    manifest = {"schemaVersion": 2, "mediaType": OCI_INDEX if oci else DOCKER_LIST, "manifests": manifests}
    return push_manifest(host, repo, manifest, tag)


def push_signature(
    host: str, repo: str, subject_digest: str, kind: str = "sig", layers: list[Layer] | None = None
) -> str:
    """Push what cosign pushes: an OCI manifest tagged `sha256-<hex>.<kind>` next to its subject, whose
    config is an (empty) image config and whose layers are the payloads, annotated as cosign does. `.sig`
    and `.att` layers are signed by the tests' Sigstore instance (tests.support.signing) unless `layers`
    (function.signing.Layer) are given."""
    if layers is None and kind in ("sig", "att"):
        layers = [signing.layer(kind, subject_digest)]
    config = json.dumps({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers"}}).encode()
    if layers is None:
        payload = json.dumps({"critical": {"image": {"docker-manifest-digest": subject_digest}}, "kind": kind}).encode()
        descriptors = [_descriptor(SIGNATURE_LAYERS[kind], payload, push_blob(host, repo, payload))]
    else:
        descriptors = [
            {
                "mediaType": x.media_type,
                "digest": push_blob(host, repo, x.blob),
                "size": x.size,
                "annotations": dict(x.annotations),
            }
            for x in layers
        ]
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor(OCI_CONFIG, config, push_blob(host, repo, config)),
        "layers": descriptors,
    }
    return push_manifest(host, repo, manifest, subject_digest.replace(":", "-") + f".{kind}")


def push_bundle_referrer(host: str, repo: str, subject_digest: str, bundle: bytes) -> str:
    """Push a Sigstore bundle as cosign v3 attaches one: an OCI 1.1 artifact with the bundle's artifactType,
    the bundle as its one layer, and `subject_digest` as its subject; by digest and untagged."""
    empty = b"{}"
    media_type = "application/vnd.dev.sigstore.bundle.v0.3+json"
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": media_type,
        "config": _descriptor(OCI_EMPTY, empty, push_blob(host, repo, empty)),
        "layers": [_descriptor(media_type, bundle, push_blob(host, repo, bundle))],
        "subject": _subject(host, repo, subject_digest),
    }
    return push_manifest(host, repo, manifest)


def push_referrers_index(host: str, repo: str, subject_digest: str, referrers: list[str]) -> str:
    """Push the referrers fallback tag `sha256-<hex>` of `subject_digest`: an image index of `referrers`,
    each described with its artifactType (or its config's media type), as the distribution spec says."""
    entries = []
    for referrer in referrers:
        media_type, body = fetch_manifest(host, repo, referrer)
        document = json.loads(body)
        artifact_type = document.get("artifactType") or document["config"]["mediaType"]
        entries.append(_descriptor(media_type, body, referrer) | {"artifactType": artifact_type})
    manifest = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    return push_manifest(host, repo, manifest, subject_digest.replace(":", "-"))


def push_referrer(
    host: str, repo: str, subject_digest: str, artifact_type: str = "application/vnd.example.sbom.v1+json"
) -> str:
    """Push an OCI 1.1 artifact manifest whose `subject` is `subject_digest`, by digest and untagged."""
    empty = b"{}"
    payload = json.dumps({"subject": subject_digest, "artifactType": artifact_type}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": _descriptor(OCI_EMPTY, empty, push_blob(host, repo, empty)),
        "layers": [_descriptor("application/json", payload, push_blob(host, repo, payload))],
        "subject": _subject(host, repo, subject_digest),
    }
    return push_manifest(host, repo, manifest)


def tag_manifest(host: str, repo: str, digest: str, tag: str) -> None:
    """Put `tag` on a manifest already in `repo`: its exact bytes, PUT again under the tag."""
    media_type, body = fetch_manifest(host, repo, digest)
    push_raw_manifest(host, repo, body, media_type, tag)


def _subject(host: str, repo: str, digest: str) -> dict[str, Any]:
    media_type, body = fetch_manifest(host, repo, digest)
    return _descriptor(media_type, body, digest)


def delete_manifest(host: str, repo: str, digest: str) -> None:
    _expect(requests.delete(f"http://{host}/v2/{repo}/manifests/{digest}", timeout=HTTP_TIMEOUT), 202)


def fetch_manifest(host: str, repo: str, reference: str) -> tuple[str, bytes]:
    """The media type and exact bytes the registry serves for `reference`."""
    got = requests.get(
        f"http://{host}/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT_ALL}, timeout=HTTP_TIMEOUT
    )
    _expect(got, 200)
    return got.headers["Content-Type"], got.content


def _platform_of(host: str, repo: str, manifest_body: bytes) -> dict[str, str]:
    config_digest = json.loads(manifest_body)["config"]["digest"]
    got = requests.get(f"http://{host}/v2/{repo}/blobs/{config_digest}", timeout=HTTP_TIMEOUT)
    _expect(got, 200)
    config = got.json()
    return {"os": config["os"], "architecture": config["architecture"]}


def _descriptor(media_type: str, data: bytes, digest: str) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _tar_gz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    # mtime=0 keeps a seed's layer, and so its digest, the same from run to run.
    return gzip.compress(raw.getvalue(), mtime=0)


def _expect(response: requests.Response, status: int) -> None:
    if response.status_code != status:
        raise AssertionError(
            f"{response.request.method} {response.url}: expected HTTP {status}, "
            f"got {response.status_code}: {response.text[:500]}"
        )


# --- pytest plugin -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry() -> Iterator[RegistryServer]:
    """A started registry shared by the session: give each test its own repository names."""
    if shutil.which(REGISTRY_BINARY) is None:
        pytest.skip("Debian's docker-registry is not installed (apt-get install docker-registry)")
    with RegistryServer() as server:
        yield server
