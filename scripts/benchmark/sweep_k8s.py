"""The whole k8s.io index swept through Google's tags/list extension: 22 loopback regions, each holding every
promoted digest of the snapshot with its tags."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson

from benchmark.common import Row
from benchmark.sweep import RATE_PER_HOST
from function.index import manifests
from function.index.digests import DigestIndex, Source
from function.sweep.runner import Sweep
from tests.support.manifests import SNAPSHOT
from tests.support.process import ThreadedHTTPServer


class _ShapedRegion(BaseHTTPRequestHandler):
    """Answers tags/list with Google's extension for one region shaped like k8s.io's; a subclass per region
    sets ``tree`` (repository -> its child names and manifest map)."""

    protocol_version = "HTTP/1.1"
    tree: dict[str, tuple[list[str], dict[str, Any]]]

    def do_GET(self) -> None:
        name = self.path.split("?", 1)[0].removeprefix("/v2/").removesuffix("/tags/list")
        entry = self.tree.get(name)
        body = json.dumps({"child": entry[0], "manifest": entry[1]} if entry else {"errors": []}).encode()
        self.send_response(200 if entry else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def run(rows: list[Row]) -> None:
    """The whole k8s.io index swept through the extension: 22 regions on loopback, each holding every
    promoted digest of the snapshot with its tags. Measures the sweep's own time (listing, deciding
    every manifest), which bounds what it needs of the function's timeout beyond the registry's latency."""
    document = orjson.loads(DigestIndex.build(manifests.load(SNAPSHOT), source=Source()).to_json())
    hosts = sorted({d.split("/", 1)[0] for p in document["projects"].values() for d in p["destinations"]})
    trees: dict[str, dict[str, tuple[list[str], dict[str, Any]]]] = {host: {} for host in hosts}
    for project in document["projects"].values():
        for destination in project["destinations"]:
            host, root = destination.split("/", 1)
            for name, dmap in project["images"].items():
                parts = f"{root}/{name}".split("/")
                for i in range(1, len(parts)):
                    children, _ = trees[host].setdefault("/".join(parts[:i]), ([], {}))
                    if parts[i] not in children:
                        children.append(parts[i])
                _, held = trees[host].setdefault("/".join(parts), ([], {}))
                for digest, tags in dmap.items():
                    held[digest] = {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "tag": tags}
    servers = {host: ThreadedHTTPServer(type("Region", (_ShapedRegion,), {"tree": trees[host]})) for host in hosts}
    for project in document["projects"].values():
        project["destinations"] = [
            f"{servers[d.split('/', 1)[0]].host}/{d.split('/', 1)[1]}" for d in project["destinations"]
        ]
        project["staging"] = None
    for server in servers.values():
        server.start()
    try:
        index = DigestIndex.from_json(orjson.dumps(document))
        index = index.with_resolutions(dict.fromkeys(index.promoted_digests(), ()))
        cpu = time.process_time()
        result = Sweep(index, workers=8).run()
        cpu = time.process_time() - cpu
    finally:
        for server in servers.values():
            server.stop()
    summary = result.summary
    rows.append(
        (
            f"sweep of a k8s.io-shaped registry, extension, {len(hosts)} regions on loopback",
            f"{summary.registry_calls:,} calls, {summary.seconds:.1f} s ({cpu:.1f} s CPU)",
            f"{summary.repositories:,} repositories, {summary.manifests:,} manifests decided; 8 regions at a time, "
            f"{RATE_PER_HOST} calls/s each; {'complete' if summary.complete else 'INCOMPLETE'}, "
            f"{len(result.findings)} findings",
        )
    )
