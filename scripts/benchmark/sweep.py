"""The sweep: a production-shaped registry on loopback swept the plain OCI way and through Google's
tags/list extension; and the calls a sweep of the real k8s.io index would make, projected."""

from __future__ import annotations

from pathlib import Path

from benchmark.common import Row
from benchmark.registry_wave import WAVE_PLATFORMS
from function.index import manifests
from function.index.digests import DigestIndex, Source
from function.index.resolve import resolve
from function.registry.client import RegistryClient
from function.sweep.runner import Sweep
from tests.support import registry as reg
from tests.support.gcr import GcrListing
from tests.support.manifests import SNAPSHOT, write_project
from tests.support.proxy import RegistryProxy

SWEEP_REGIONS = 4
SWEEP_IMAGES = 20
SWEEP_RELEASES = 2
SWEEP_PLATFORMS = WAVE_PLATFORMS[:3]
RATE_PER_HOST = 80  # the registry client's default per-host rate limit


def run(rows: list[Row], work: Path) -> None:
    """A production-shaped registry on loopback, swept the plain way and through Google's listing extension.

    Each region is a host of its own (a proxy, or a listing server, in front of the one registry), so the
    regions are swept in parallel as Artifact Registry's are."""
    with reg.RegistryServer() as server:
        host = server.host
        dmap: dict[str, dict[str, list[str]]] = {}
        for region in range(SWEEP_REGIONS):
            for n in range(SWEEP_IMAGES):
                repo = f"r{region}/images/img{n:02d}"
                for release in range(SWEEP_RELEASES):
                    children = [
                        reg.push_image(host, repo, platform=p, seed=f"{n}-{release}-{p[1]}") for p in SWEEP_PLATFORMS
                    ]
                    parent = reg.push_index(host, repo, children, tag=f"v1.{release}")
                    reg.push_signature(host, repo, parent)
                    dmap.setdefault(f"img{n:02d}", {})[parent] = [f"v1.{release}"]
        manifests_per_region = SWEEP_IMAGES * SWEEP_RELEASES * (len(SWEEP_PLATFORMS) + 2)
        for n, label in enumerate(("plain OCI registry: _catalog, tags, HEADs", "GCR/AR extension")):
            servers = [GcrListing(server) if n else RegistryProxy(server.url) for _ in range(SWEEP_REGIONS)]
            for each in servers:
                each.start()
            try:
                root = work / f"sweep-{n}"
                destinations = [f"{s.host}/r{i}/images" for i, s in enumerate(servers)]
                write_project(
                    root,
                    "sweep",
                    destinations=destinations,
                    images=[{"name": name, "dmap": d} for name, d in dmap.items()],
                    staging=f"{servers[0].host}/staging",
                )
                index = DigestIndex.build(manifests.load(root), source=Source())
                resolve(index, RegistryClient(index.registry_hosts()))
                for each in servers:
                    each.clear()
                result = Sweep(index).run()
                seen = sum(len(each.requests) for each in servers)
            finally:
                for each in servers:
                    each.stop()
            summary = result.summary
            rows.append(
                (
                    f"sweep, {label}",
                    f"{summary.registry_calls} calls, {summary.seconds:.2f} s",
                    f"{SWEEP_REGIONS} regions x {SWEEP_IMAGES} images x {SWEEP_RELEASES} releases "
                    f"({len(SWEEP_PLATFORMS)} platforms, signed; {manifests_per_region} manifests/region); "
                    f"{summary.registry_calls / summary.repositories:.1f} calls per repository; "
                    f"{seen} requests seen, {'complete' if summary.complete else 'INCOMPLETE'}, "
                    f"{'clean' if summary.clean else 'NOT CLEAN'}",
                )
            )


def projection(rows: list[Row]) -> None:
    """Calls for sweeping the real k8s.io index: one tags/list per repository and namespace with the
    extension, against one HEAD per promoted digest per region."""
    index = DigestIndex.build(manifests.load(SNAPSHOT), source=Source())
    destinations = [d for p in index.projects.values() for d in p.destinations]
    hosts = sorted({d.split("/", 1)[0] for d in destinations})
    nodes: dict[str, set[str]] = {h: set() for h in hosts}
    heads: dict[str, set[tuple[str, str]]] = {h: set() for h in hosts}
    for project in index.projects.values():
        for destination in project.destinations:
            host, root = destination.split("/", 1)
            for image in project.images.values():
                nodes[host].add(root)
                heads[host].update((f"{root}/{image.name}", d) for d in image.digests)
                # The walk lists every namespace between a destination and an image, and the image.
                parts = image.name.split("/")
                nodes[host].update(f"{root}/{'/'.join(parts[:i])}" for i in range(1, len(parts) + 1))
    listing = sum(len(n) for n in nodes.values())
    checking = sum(len(h) for h in heads.values())
    busiest = max(len(n) for n in nodes.values())
    rows += [
        (
            f"sweep of the real k8s.io index, projected: {len(hosts)} regions",
            f"{listing:,} tags/list calls",
            f"{busiest} per region: >= {busiest / RATE_PER_HOST:.0f} s at {RATE_PER_HOST} calls/s, regions in parallel",
        ),
        (
            "... against one HEAD per promoted digest per region",
            f"{checking:,} HEADs",
            f"{checking / listing:.0f}x more",
        ),
    ]
