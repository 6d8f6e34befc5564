"""Registry calls of a promotion wave as pushed today (20 registries, 5 platforms, a provenance referrer in
every region, a signature in one), against the previous auditor's algorithm (walk staging for every event
whose digest the manifests do not list), on Debian's registry behind a counting proxy; and the calls of
the first online build of that index and of an incremental rebuild."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

from benchmark.common import Row
from function.auditor import Auditor
from function.index.digests import DigestIndex, Source
from function.index.publish import rebuild
from function.index.source import FixedIndex
from function.registry.client import RegistryClient
from function.storage.uri import open_store
from tests.support import registry as reg
from tests.support.proxy import RegistryProxy

WAVE_DESTINATIONS = 20
WAVE_PLATFORMS = [("linux", a) for a in ("amd64", "arm64", "ppc64le", "s390x", "arm")]
STAGING_IMAGES = 12  # a staging project of this many images with 3 releases each, as the old auditor walked


def run(rows: list[Row], work: Path) -> None:
    with reg.RegistryServer() as server, RegistryProxy(server.url) as proxy:
        host = proxy.host
        staging = f"{host}/k8s-staging-wave"
        destinations = [f"{host}/r{i:02d}/images" for i in range(WAVE_DESTINATIONS)]
        for n in range(STAGING_IMAGES):
            for release in range(3):
                children = [
                    reg.push_image(host, f"k8s-staging-wave/img{n}", platform=p, seed=f"{n}-{release}-{p[1]}")
                    for p in WAVE_PLATFORMS[:2]
                ]
                reg.push_index(host, f"k8s-staging-wave/img{n}", children, tag=f"v{release}")
        # As promotions are pushed today: every region gets the image, its platform children and its
        # provenance referrer; the signature exists in one region only.
        images: list[dict[str, str]] = []
        artifacts: list[dict[str, str]] = []
        for n, destination in enumerate(destinations):
            repo = destination.split("/", 1)[1] + "/wave"
            children = [reg.push_image(host, repo, platform=p, seed=f"wave-{p[1]}") for p in WAVE_PLATFORMS]
            parent = reg.push_index(host, repo, children, tag="v1.0")
            path = f"{destination}/wave"
            images.append({"action": "INSERT", "digest": f"{path}@{parent}", "tag": f"{path}:v1.0"})
            images += [{"action": "INSERT", "digest": f"{path}@{c}"} for c in children]
            provenance = reg.push_referrer(host, repo, parent, artifact_type="application/vnd.in-toto+json")
            artifacts.append({"action": "INSERT", "digest": f"{path}@{provenance}"})
            if n == 0:
                signature = reg.push_signature(host, repo, parent)
                tag = f"{path}:{parent.replace(':', '-')}.sig"
                artifacts.append({"action": "INSERT", "digest": f"{path}@{signature}", "tag": tag})
        wave = images + artifacts
        root = work / "wave"
        write_wave_manifests(root, staging, destinations, {"wave": {parent: ["v1.0"]}})
        out = work / "wave-index.json"
        proxy.clear()
        rebuild(root, open_store(str(out)), source=Source(), registry_factory=RegistryClient)
        first_build = len(proxy.requests)
        index = DigestIndex.from_json(out.read_bytes())
        auditor = Auditor(FixedIndex(index), RegistryClient(index.registry_hosts()))
        proxy.clear()
        verdicts = [auditor.audit_payload(json.dumps(e)) for e in wave]
        verified = sum(v.verdict == "VERIFIED" for v in verdicts)
        ours = len(proxy.requests)
        image_calls = sum(v.registry_calls for v in verdicts if v.basis in ("listed", "child"))
        artifact_calls = sum(v.registry_calls for v in verdicts if v.basis not in ("listed", "child"))
        # The previous auditor, for every event whose digest the manifests do not list (children and
        # signatures): list the staging repositories, their tags, and fetch every manifest they hold.
        proxy.clear()
        walk_staging(host, "k8s-staging-wave")
        per_walk = len(proxy.requests)
        # Every event but the tagged lists: children, the signature and the referrers.
        non_listed = sum(1 for e in wave if "tag" not in e or e["tag"].endswith(".sig"))
        previous = per_walk * non_listed
        # One new promotion merged: an incremental rebuild fetches only its digest.
        for destination in destinations:
            repo = destination.split("/", 1)[1] + "/wave"
            new = reg.push_image(host, repo, platform=WAVE_PLATFORMS[0], tag="v1.1", seed="new")
        write_wave_manifests(root, staging, destinations, {"wave": {parent: ["v1.0"], new: ["v1.1"]}})
        proxy.clear()
        rebuild(root, open_store(str(out)), source=Source(), registry_factory=RegistryClient)
        incremental = len(proxy.requests)
    rows += [
        (
            f"promotion wave: {len(wave)} events ({WAVE_DESTINATIONS} registries, 5 platforms, "
            "provenance everywhere, signed in one)",
            f"{ours} registry calls ({ours / len(wave):.3f}/event)",
            f"one per distinct artifact manifest; {verified} of {len(wave)} VERIFIED",
        ),
        (
            f"  of which {len(images)} image and child events",
            f"{image_calls} calls",
            "target 0",
        ),
        (
            f"  of which {len(artifacts)} signature and referrer events",
            f"{artifact_calls} calls ({artifact_calls / len(artifacts):.2f}/event)",
            "content checked once per digest",
        ),
        (
            "previous auditor's algorithm on the same wave",
            f"{previous} calls ({previous / len(wave):.1f}/event)",
            f"{per_walk} per staging walk x {non_listed} non-listed events",
        ),
        ("first online build of the wave's index", f"{first_build} calls", "one GET per listed digest"),
        ("incremental rebuild after one new promotion", f"{incremental} calls", "only the new digest"),
    ]


def write_wave_manifests(root: Path, staging: str, destinations: list[str], images: dict[str, Any]) -> None:
    import yaml

    (root / "manifests" / "wave").mkdir(parents=True, exist_ok=True)
    (root / "images" / "wave").mkdir(parents=True, exist_ok=True)
    registries = [{"name": staging, "src": True}] + [{"name": d} for d in destinations]
    (root / "manifests" / "wave" / "promoter-manifest.yaml").write_text(yaml.safe_dump({"registries": registries}))
    (root / "images" / "wave" / "images.yaml").write_text(
        yaml.safe_dump([{"name": n, "dmap": dmap} for n, dmap in images.items()])
    )


def walk_staging(host: str, prefix: str) -> None:
    session = requests.Session()
    accept = {
        "Accept": "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json"
    }
    catalog = session.get(f"http://{host}/v2/_catalog?n=1000", timeout=10).json()["repositories"]
    for repo in (r for r in catalog if r.startswith(prefix + "/")):
        tags = session.get(f"http://{host}/v2/{repo}/tags/list", timeout=10).json()["tags"] or []
        for tag in tags:
            session.get(f"http://{host}/v2/{repo}/manifests/{tag}", headers=accept, timeout=10)
