"""A promotion as it happens, on a real registry: used by the end-to-end tests and by the demo.

Project ``k8s-staging-demo`` promotes to three "regional" destinations on one registry host. Commit 1
promotes ``pause`` (an OCI image index over three platforms, signed, attested and with an OCI 1.1 SBOM
referrer) and ``logger`` (a Docker manifest list whose amd64 child is also listed as ``logger-amd``).
Commit 2 adds ``etcd``. Content is seeded, so digests are the same on every run and host.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support import registry as reg

PROJECT = "k8s-staging-demo"
REGIONS = ("us-central1", "europe-west1", "asia-east1")
PLATFORMS = (("linux", "amd64"), ("linux", "arm64"), ("linux", "ppc64le"))


def destinations(host: str) -> list[str]:
    return [f"{host}/{region}/images" for region in REGIONS]


@dataclass
class Artifact:
    """One manifest as the registry's Pub/Sub message will name it."""

    image: str
    digest: str
    tag: str | None = None
    kind: str = "listed"  # listed | child | signature | attestation | referrer


@dataclass
class Promotion:
    host: str
    # image -> digest -> tags, per commit
    commits: dict[str, dict[str, dict[str, list[str]]]] = field(default_factory=dict)
    artifacts: dict[str, list[Artifact]] = field(default_factory=dict)

    def events(self, image: str, region: str | None = None) -> list[dict[str, str]]:
        """The Pub/Sub payloads of pushing ``image`` to every destination (or one region)."""
        payloads = []
        for destination in destinations(self.host):
            if region is not None and f"/{region}/" not in destination:
                continue
            path = f"{destination}/{image}"
            for artifact in self.artifacts[image]:
                payload = {"action": "INSERT", "digest": f"{path}@{artifact.digest}"}
                if artifact.tag:
                    payload["tag"] = f"{path}:{artifact.tag}"
                payloads.append(payload)
        return payloads

    def write_manifests(self, commit: str, root: Path) -> Path:
        """The thin layout of ``commit`` under ``root`` (the folder holding images/ and manifests/)."""
        write_tree(root, self.host, self.commits[commit])
        return root


def write_tree(root: Path, host: str, images: dict[str, dict[str, list[str]]]) -> None:
    registries: list[dict[str, Any]] = [{"name": f"{host}/{PROJECT}", "src": True}]
    registries += [
        {"name": d, "service-account": "promoter@example.iam.gserviceaccount.com"} for d in destinations(host)
    ]
    (root / "manifests" / PROJECT).mkdir(parents=True, exist_ok=True)
    (root / "images" / PROJECT).mkdir(parents=True, exist_ok=True)
    (root / "manifests" / PROJECT / "promoter-manifest.yaml").write_text(
        yaml.safe_dump({"registries": registries}, sort_keys=False)
    )
    document = [{"name": name, "dmap": dmap} for name, dmap in sorted(images.items())]
    (root / "images" / PROJECT / "images.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def _repositories(image: str) -> list[str]:
    """Staging and every destination: the promoter copies the same bytes, so digests agree."""
    return [f"{PROJECT}/{image}"] + [f"{region}/images/{image}" for region in REGIONS]


def _multi_arch(host: str, image: str, tag: str, *, oci: bool, platforms: Any) -> list[Artifact]:
    for repo in _repositories(image):
        children = [reg.push_image(host, repo, platform=p, oci=oci, seed=f"{image}-{tag}-{p[1]}") for p in platforms]
        parent = reg.push_index(host, repo, children, tag=tag, oci=oci)
    return [Artifact(image, parent, tag)] + [Artifact(image, c, kind="child") for c in children]


def promote(host: str, *, via: str | None = None) -> Promotion:
    """Push all of the scenario's content (staging and destinations) to the registry that the manifests
    call ``host``, sending the bytes to ``via`` when the tests put a proxy in between."""
    promotion = Promotion(host)
    pushed_to = via or host
    pause = _multi_arch(pushed_to, "pause", "3.10", oci=True, platforms=PLATFORMS)
    logger = _multi_arch(pushed_to, "logger", "v1", oci=False, platforms=PLATFORMS[:2])
    etcd = _multi_arch(pushed_to, "etcd", "3.5.15", oci=True, platforms=PLATFORMS[:2])
    pause_index = pause[0].digest
    for repo in _repositories("pause"):
        signature = reg.push_signature(pushed_to, repo, pause_index, "sig")
        attestation = reg.push_signature(pushed_to, repo, pause_index, "att")
        sbom = reg.push_referrer(pushed_to, repo, pause_index)
    hexpart = pause_index.removeprefix("sha256:")
    pause += [
        Artifact("pause", signature, f"sha256-{hexpart}.sig", "signature"),
        Artifact("pause", attestation, f"sha256-{hexpart}.att", "attestation"),
        Artifact("pause", sbom, None, "referrer"),
    ]
    logger_amd = logger[1].digest
    for repo in _repositories("logger-amd"):
        # The same bytes as logger's amd64 child, promoted under a name of its own.
        reg.push_image(pushed_to, repo, tag="v1-amd64", platform=PLATFORMS[0], seed="logger-v1-amd64")
    promotion.artifacts = {"pause": pause, "logger": logger, "etcd": etcd}
    first = {
        "pause": {pause_index: ["3.10"]},
        "logger": {logger[0].digest: ["v1"]},
        "logger-amd": {logger_amd: ["v1-amd64"]},
    }
    promotion.commits = {"commit-1": first, "commit-2": {**first, "etcd": {etcd[0].digest: ["3.5.15"]}}}
    return promotion


def tarball(root: Path, commit: str, subdir: str = "registry.k8s.io") -> bytes:
    """What GitHub serves for a commit: one top folder ``k8s.io-<commit>/`` holding ``subdir``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        tar.add(root, arcname=f"k8s.io-{commit}/{subdir}")
    return raw.getvalue()
