"""The sweep's signature check on Debian's registry (CONTRACT.md, Signatures): in the signing registry every
promoted digest has a `.sig` that verifies, else MISSING `unsigned`; platform children and
architecture-suffixed images are exempt; verified signatures are remembered beside the index, so a second
sweep of an unchanged registry reads no signature layer."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from function.index import manifests
from function.index.digests import DigestIndex, Source
from function.index.resolve import resolve
from function.storage.local import LocalStore
from function.sweep import verified
from function.sweep.runner import Result, Sweep
from function.sweep.unsigned import SigningRequirement
from tests.support import registry as reg
from tests.support import signing
from tests.support.auditing import client
from tests.support.gcr import GcrListing
from tests.support.manifests import write_project
from tests.support.proxy import RegistryProxy
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.registry


@dataclasses.dataclass
class Signed:
    """A signing registry ``<prefix>/images`` on ``host`` and the digests a test asserts on."""

    host: str
    prefix: str
    digests: dict[str, str]
    promoted: dict[str, dict[str, list[str]]]

    @property
    def registry(self) -> str:
        return f"{self.host}/{self.prefix}/images"

    def index(self, tmp_path: Path) -> DigestIndex:
        root = tmp_path / "manifests"
        images = [{"name": name, "dmap": dmap} for name, dmap in sorted(self.promoted.items())]
        write_project(root, "k8s-staging-signed", destinations=[self.registry], images=images)
        index, _ = resolve(
            DigestIndex.build(manifests.load(root), source=Source(commit="c0ffee")), client(frozenset({self.host}))
        )
        return index


def push(host: str, *, forged: bool = False) -> Signed:
    """pause (a signed list: its children unsigned, as the promoter leaves them, one of them also listed
    under a tag of its own), etcd (unsigned),
    kube-proxy-amd64 (unsigned, as the promoter leaves architecture-suffixed images), and with ``forged``
    logger, whose `.sig` holds a signature that does not verify."""
    prefix = f"signed-{uuid.uuid4().hex[:8]}"
    repo = f"{prefix}/images"
    d: dict[str, str] = {}
    children = [
        reg.push_image(host, f"{repo}/pause", platform=("linux", a), seed=f"pause-{a}") for a in ("amd64", "s390x")
    ]
    d["pause"] = reg.push_index(host, f"{repo}/pause", children, tag="3.10")
    d["pause-amd64-child"] = children[0]
    reg.tag_manifest(host, f"{repo}/pause", children[0], "3.10-linux-amd64")
    d["pause-signature"] = reg.push_signature(host, f"{repo}/pause", d["pause"], "sig")
    d["etcd"] = reg.push_image(host, f"{repo}/etcd", tag="3.5", seed="etcd")
    d["kube-proxy-amd64"] = reg.push_image(host, f"{repo}/kube-proxy-amd64", tag="v1", seed="kube-proxy")
    promoted = {
        "pause": {d["pause"]: ["3.10"], children[0]: ["3.10-linux-amd64"]},
        "etcd": {d["etcd"]: ["3.5"]},
        "kube-proxy-amd64": {d["kube-proxy-amd64"]: ["v1"]},
    }
    if forged:
        d["logger"] = reg.push_image(host, f"{repo}/logger", tag="v1", seed="logger")
        good = signing.layer("sig", d["logger"])
        junk = base64.b64encode(b"not the promoter's signature").decode()
        layer = dataclasses.replace(good, annotations={**good.annotations, "dev.cosignproject.cosign/signature": junk})
        d["logger-signature"] = reg.push_signature(host, f"{repo}/logger", d["logger"], "sig", layers=[layer])
        promoted["logger"] = {d["logger"]: ["v1"]}
    return Signed(host, prefix, d, promoted)


@pytest.fixture
def proxy(registry: RegistryServer) -> Iterator[RegistryProxy]:
    with RegistryProxy(registry.url) as proxy:
        yield proxy


def sweep(signed: Signed, tmp_path: Path, proxy: RegistryProxy, **requirement: Any) -> Result:
    index = signed.index(tmp_path)
    proxy.clear()
    records = LocalStore(tmp_path / "index.json").records(verified.FOLDER)
    wanted = SigningRequirement(**({"registry": signed.registry} | requirement))
    return Sweep(
        index, registry_factory=client, signing=signing.policy(), requirement=wanted, signed_records=records
    ).run()


def rows(result: Result, signed: Signed) -> set[tuple[Any, ...]]:
    names = {digest: name for name, digest in signed.digests.items()}
    return {(f.verdict, f.reason, names.get(f.digest or "")) for f in result.findings}


def blob_reads(proxy: RegistryProxy) -> int:
    return sum(1 for r in proxy.registry_requests() if r.method == "GET" and "/blobs/" in r.path)


def test_unsigned_found_children_and_architecture_images_exempt(
    tmp_path: Path, registry: RegistryServer, proxy: RegistryProxy
) -> None:
    signed = push(proxy.host, forged=True)
    result = sweep(signed, tmp_path, proxy)
    # etcd has no .sig; logger's does not verify (its own line, not `unsigned`); pause is signed, its
    # children (one listed under a tag of its own too) and kube-proxy-amd64 are not required to be.
    assert rows(result, signed) == {("MISSING", "unsigned", "etcd"), ("REJECTED", "bad_signature", "logger-signature")}
    unsigned = next(f for f in result.findings if f.reason == "unsigned")
    assert (unsigned.image, unsigned.path, unsigned.source) == ("etcd", f"{signed.registry}/etcd", "sweep")
    assert "sha256-" in unsigned.message and ".sig" in unsigned.message
    forged = next(f for f in result.findings if f.reason == "bad_signature")
    assert "signature check failed" in forged.message
    summary = result.summary.fields()
    assert (summary["unsigned"], summary["missing"], summary["rejected"], summary["complete"]) == (1, 1, 1, True)


def test_signing_registry_empty_turns_the_check_off(
    tmp_path: Path, registry: RegistryServer, proxy: RegistryProxy
) -> None:
    signed = push(proxy.host)
    result = sweep(signed, tmp_path, proxy, registry="")
    assert rows(result, signed) == set()
    assert result.summary.fields()["unsigned"] == 0


def test_a_second_sweep_reads_no_signature_layer(
    tmp_path: Path, registry: RegistryServer, proxy: RegistryProxy
) -> None:
    signed = push(proxy.host)
    first = sweep(signed, tmp_path, proxy)
    assert rows(first, signed) == {("MISSING", "unsigned", "etcd")}
    signature_layer = signing.layer("sig", signed.digests["pause"]).digest
    assert [r.path for r in proxy.registry_requests() if signature_layer in r.path] != []
    # A new process: nothing learned in memory, only what the first sweep recorded beside the index.
    second = sweep(signed, tmp_path, proxy)
    assert rows(second, signed) == {("MISSING", "unsigned", "etcd")}
    assert blob_reads(proxy) == 0
    # Recorded under the policy's fingerprint: other signers read none of it and verify again.
    records = LocalStore(tmp_path / "index.json").records(verified.FOLDER)
    assert [name.startswith(signing.policy().fingerprint[:32]) for name in records.read_all()] == [True]


def test_signed_since_exempts_what_the_listing_says_was_uploaded_before(
    tmp_path: Path, registry: RegistryServer
) -> None:
    with GcrListing(registry) as listing:
        signed = push(listing.host)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        assert rows(sweep(signed, tmp_path, listing, since=later), signed) == set()
        earlier = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        assert rows(sweep(signed, tmp_path, listing, since=earlier), signed) == {("MISSING", "unsigned", "etcd")}
