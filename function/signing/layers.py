"""A signature layer: what it is called, how much of it may be read, and the layer as read. Light, so that
choosing what to fetch loads no cryptography."""

from collections.abc import Mapping
from dataclasses import dataclass

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"

# Read caps for the caller. A simple-signing payload is ~250 bytes (plus `cosign sign -a` annotations):
# 64 KiB is generous yet keeps a hostile layer cheap. A DSSE envelope holds a whole predicate: SLSA provenance
# is a few KiB, but SBOM attestations of large images reach MiBs (base64 adds a third); 16 MiB fits those
# while bounding a function instance's memory per layer. A Sigstore bundle wraps one such envelope.
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
MAX_BUNDLE_BYTES = MAX_ENVELOPE_BYTES


@dataclass(frozen=True)
class Layer:
    """A layer of a `.sig` / `.att` manifest: its descriptor and its blob as the registry served it."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str]
    blob: bytes
