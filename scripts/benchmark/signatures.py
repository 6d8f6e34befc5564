"""What checking signatures costs: registry calls per `.sig` (on Debian's registry behind a counting proxy),
verification time per signature (the real public-good `.sig` and DSSE bundle of ../shared/data/sigstore),
and the sweep's signature reads for a k8s.io-shaped signing registry (the snapshot's promoted digests in
it) against Artifact Registry's 5,000 requests a minute."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from benchmark.common import Row, best_of
from function.auditor import Auditor
from function.events import Event
from function.index import manifests
from function.index.digests import DigestIndex, Source
from function.index.source import FixedIndex
from function.registry.client import RegistryClient
from function.settings import DEFAULT_SIGNING_REGISTRY
from function.signatures import SigningPolicy
from function.signing.bundle import verify_bundle
from function.signing.cosign import verify_signature_layers
from function.signing.layers import Layer
from function.signing.signers import parse_signers
from function.sweep.unsigned import SigningRequirement
from tests.support import registry as reg
from tests.support import signing
from tests.support.manifests import SNAPSHOT, write_project
from tests.support.proxy import RegistryProxy
from tests.support.sigstore_fixtures import DSSE_BUNDLE, DSSE_SIGNER, FIXTURES, LEGACY, LEGACY_SIGNER, LEGACY_SUBJECT

AR_REQUESTS_PER_MINUTE = 5000
RUNS = 200


def run(rows: list[Row], work: Path, *, registry: bool) -> None:
    if registry:
        _calls(rows, work)
    _verification(rows)
    _sweep_cost(rows)


def _calls(rows: list[Row], work: Path) -> None:
    """One `.sig` event decided twice in one instance, and in a second region."""
    with reg.RegistryServer() as server, RegistryProxy(server.url) as proxy:
        host = proxy.host
        subject = reg.push_image(host, "a/images/pause", tag="3.10", seed="signed")
        signature = reg.push_signature(host, "a/images/pause", subject, "sig")
        reg.push_signature(host, "b/images/pause", subject, "sig")
        root = work / "signed-manifests"
        dmap = {"name": "pause", "dmap": {subject: ["3.10"]}}
        write_project(root, "p", destinations=[f"{host}/a/images", f"{host}/b/images"], images=[dmap])
        index = DigestIndex.build(manifests.load(root), source=Source(commit="c1"))
        auditor = Auditor(FixedIndex(index), RegistryClient(index.registry_hosts()), signing=signing.policy())
        tag = subject.replace(":", "-") + ".sig"
        calls = []
        for region in ("a", "a", "b"):
            verdict = auditor.audit(Event("INSERT", f"{host}/{region}/images/pause", signature, tag))
            assert verdict.verdict == "VERIFIED", verdict
            calls.append(verdict.registry_calls)
    rows.append(
        (
            "registry calls per .sig event: first, again, another region",
            " / ".join(str(c) for c in calls),
            "its manifest and its one layer's blob, once per instance (target: 1 + layers, once)",
        )
    )


def _verification(rows: list[Row]) -> None:
    document = json.loads((LEGACY / "sig-manifest.crane.json").read_text())["layers"][0]
    blob = (LEGACY / "payload.json").read_bytes()
    layer = Layer(document["mediaType"], document["digest"], document["size"], document["annotations"], blob)
    root = SigningPolicy(parse_signers(LEGACY_SIGNER), (FIXTURES / "trusted_root.production.json").read_bytes())
    trust = root.trust
    seconds, outcome = best_of(
        RUNS, lambda: verify_signature_layers([layer], LEGACY_SUBJECT, trust=trust, signers=root.signers)
    )
    rows.append(
        (
            "verification of the real public-good .sig (4 checks)",
            f"{seconds * 1000:.2f} ms",
            f"best of {RUNS}; {type(outcome).__name__}; cryptography + rfc8785",
        )
    )
    bundle = (DSSE_BUNDLE / "reusable-workflow-attestation.sigstore.json").read_bytes()
    subject = "sha256:" + hashlib.sha256((DSSE_BUNDLE / "reusable-workflow-artifact").read_bytes()).hexdigest()
    signers = parse_signers(DSSE_SIGNER)
    seconds, outcome = best_of(RUNS, lambda: verify_bundle(bundle, subject, trust=trust, signers=signers))
    rows.append(
        (
            "verification of the real v0.3 DSSE bundle",
            f"{seconds * 1000:.2f} ms",
            f"best of {RUNS}; {type(outcome).__name__}; sigstore-python's Verifier",
        )
    )
    # In a fresh interpreter: what the first signature of an instance pays before its checks.
    script = (
        "import time; t = time.perf_counter(); from function.signatures import SigningPolicy; "
        "SigningPolicy.default().trust; print(time.perf_counter() - t)"
    )
    project = Path(__file__).resolve().parents[2]
    ran = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True, check=True)
    first = float(ran.stdout)
    rows.append(
        (
            "first signature of an instance: imports + public-good root",
            f"{first * 1000:.0f} ms",
            "once per instance; import function.cli and the audit cold start load none of it",
        )
    )


def _sweep_cost(rows: list[Row]) -> None:
    """Reads of the sweep's signature check in the default signing registry, from the snapshot's promoted
    digests there (children and architecture-suffixed images exempt): each `.sig` costs its manifest and
    its one layer's blob the first time, its manifest only once its verification is recorded."""
    index = DigestIndex.build(manifests.load(SNAPSHOT), source=Source())
    requirement = SigningRequirement(DEFAULT_SIGNING_REGISTRY)
    required = exempt = 0
    for project in index.projects.values():
        for destination in project.destinations:
            if not destination.startswith(DEFAULT_SIGNING_REGISTRY):
                continue
            for name, image in project.images.items():
                count = len(image.digests)
                if requirement.applies_to(f"{destination}/{name}"):
                    required += count
                else:
                    exempt += count
    first, later = 2 * required, required
    rows.append(
        (
            "sweep signature reads, k8s.io-shaped signing registry",
            f"{first:,} first / {later:,} later calls",
            f"{required:,} promoted digests to sign in {DEFAULT_SIGNING_REGISTRY} ({exempt:,} of -arch images "
            f"exempt): {first / AR_REQUESTS_PER_MINUTE:.1f} / {later / AR_REQUESTS_PER_MINUTE:.1f} min of a "
            f"{AR_REQUESTS_PER_MINUTE:,}/min quota",
        )
    )
