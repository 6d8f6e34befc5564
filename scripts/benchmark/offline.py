"""The offline build of the real k8s.io index, its size and load time, and the same for an upper bound in
which every promoted digest is a 5-platform list (what production holds after a sync, at most)."""

from __future__ import annotations

import gzip
import hashlib

from benchmark.common import Row, best_of
from function.index import manifests
from function.index.digests import DigestIndex, Source
from tests.support.manifests import SNAPSHOT

# The platforms of k8s.io's multi-platform images (pause, kube-proxy, ...).
PLATFORMS = ("linux/amd64", "linux/arm", "linux/arm64", "linux/ppc64le", "linux/s390x")


def run(rows: list[Row]) -> dict[str, bytes]:
    """The rows; the two indexes as JSON by label, for the cold start."""
    build_s, index = best_of(3, lambda: DigestIndex.build(manifests.load(SNAPSHOT), source=Source()))
    data = index.to_json()
    load_s, _ = best_of(5, lambda: DigestIndex.from_json(data))
    rows += [
        ("offline build, real snapshot", f"{build_s:.3f} s", "target < 1 s"),
        ("index JSON size", f"{len(data) / 1e6:.2f} MB ({len(gzip.compress(data)) / 1e6:.2f} MB gzip)", ""),
        ("index load", f"{load_s:.3f} s", "target < 0.3 s"),
    ]
    # What production holds after sync: here every listed digest is taken as a 5-platform list (an upper bound),
    # with the platforms each child's descriptor names.
    plain = DigestIndex.from_json(data)
    resolved = plain.with_resolutions(
        {
            d: ["sha256:" + hashlib.sha256(f"{d}{i}".encode()).hexdigest() for i in range(5)]
            for d in plain.promoted_digests()
        },
        dict.fromkeys(plain.promoted_digests(), PLATFORMS),
    )
    full = resolved.to_json()
    full_load_s, _ = best_of(3, lambda: DigestIndex.from_json(full))
    rows += [
        (
            "index size, every digest a 5-child list",
            f"{len(full) / 1e6:.2f} MB ({len(gzip.compress(full)) / 1e6:.2f} MB gzip)",
            "",
        ),
        ("index load, every digest a 5-child list", f"{full_load_s:.3f} s", "upper bound"),
    ]
    return {"real k8s.io index": data, "5-child upper bound": full}
