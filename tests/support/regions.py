"""Two regions of one promotion on a real registry: one complete, one that a promotion left part-done
and someone pushed into by hand. Used by the sweep's tests.

Each region is a destination ``<region>/images`` on a host of its own (a proxy or listing server in front
of the one Debian registry), so a fault can take one region down. Content is seeded: the same digests in
both regions, and on every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.support import registry as reg
from tests.support.manifests import write_project

PROJECT = "k8s-staging-sweep"
PLATFORMS = (("linux", "amd64"), ("linux", "arm64"))


@dataclass
class Regions:
    prefix: str
    # image -> digest -> promoted tags
    promoted: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # names a test asserts on -> digest
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> str:
        return f"{self.prefix}-a/images"

    @property
    def incomplete(self) -> str:
        return f"{self.prefix}-b/images"

    @property
    def outside(self) -> str:
        return f"{self.prefix}-elsewhere/tools"

    def write_manifests(self, root: Path, complete_host: str, incomplete_host: str) -> Path:
        write_project(
            root,
            PROJECT,
            destinations=[f"{complete_host}/{self.complete}", f"{incomplete_host}/{self.incomplete}"],
            images=[{"name": name, "dmap": dmap} for name, dmap in sorted(self.promoted.items())],
            staging=f"{complete_host}/{self.prefix}-staging",
        )
        return root


def _multi_arch(host: str, repo: str, image: str, *, oci: bool) -> tuple[str, list[str]]:
    children = [reg.push_image(host, repo, platform=p, oci=oci, seed=f"{image}-{p[1]}") for p in PLATFORMS]
    return reg.push_index(host, repo, children, oci=oci), children


def build(host: str, prefix: str) -> Regions:
    """Push both regions and the content outside them to the registry at ``host``."""
    regions = Regions(prefix)
    d = regions.digests
    for region in (regions.complete, regions.incomplete):
        pause, (d["pause-amd64"], d["pause-arm64"]) = _multi_arch(host, f"{region}/pause", "pause", oci=True)
        etcd, (d["etcd-amd64"], d["etcd-arm64"]) = _multi_arch(host, f"{region}/etcd", "etcd", oci=False)
        d["pause"], d["etcd"] = pause, etcd
        d["logger"] = reg.push_image(host, f"{region}/logger", seed="logger-v1")
        d["logger-old"] = reg.push_image(host, f"{region}/logger", seed="logger-v0")
        d["coredns"] = reg.push_image(host, f"{region}/coredns", seed="coredns-1.11")
    regions.promoted = {
        "pause": {d["pause"]: ["3.10"]},
        "etcd": {d["etcd"]: ["3.5"]},
        "logger": {d["logger"]: ["v1"], d["logger-old"]: []},
        "coredns": {d["coredns"]: ["1.11"]},
    }
    _complete(host, regions)
    _incomplete(host, regions)
    reg.push_image(host, regions.outside, tag="v1", seed="not-promoted-anywhere")
    return regions


def _complete(host: str, regions: Regions) -> None:
    """Every promoted tag, the signature, attestation and SBOM referrer of pause: nothing to report."""
    d, region = regions.digests, regions.complete
    pause = f"{region}/pause"
    reg.tag_manifest(host, pause, d["pause"], "3.10")
    reg.tag_manifest(host, f"{region}/etcd", d["etcd"], "3.5")
    reg.tag_manifest(host, f"{region}/logger", d["logger"], "v1")
    reg.tag_manifest(host, f"{region}/coredns", d["coredns"], "1.11")
    d["signature"] = reg.push_signature(host, pause, d["pause"], "sig")
    d["attestation"] = reg.push_signature(host, pause, d["pause"], "att")
    d["referrer"] = reg.push_referrer(host, pause, d["pause"])


def _incomplete(host: str, regions: Regions) -> None:
    """What a promotion that failed part-way, and pushes by hand, leave behind."""
    d, region = regions.digests, regions.incomplete
    pause = f"{region}/pause"
    reg.tag_manifest(host, pause, d["pause"], "3.10")
    reg.tag_manifest(host, pause, d["pause"], "latest")  # an extra tag on a promoted digest
    reg.delete_manifest(host, pause, d["pause-arm64"])  # a platform child missing under its list
    reg.delete_manifest(host, f"{region}/etcd", d["etcd"])  # a promoted digest missing (its tag with it)
    # logger's v1 digest is there, but not its tag.
    d["moved"] = reg.push_image(host, f"{region}/coredns", tag="1.11", seed="coredns-rebuilt")  # the tag moved
    d["backdoor"] = reg.push_image(host, f"{region}/backdoor", tag="v1", seed="backdoor")  # an unknown image
    # Untagged and unpromoted: only a listing with every digest (the extension) can see it.
    d["stray"] = reg.push_image(host, pause, seed="stray")
