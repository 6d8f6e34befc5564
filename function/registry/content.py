"""The OCI content model: what a registry manifest says, parsed from untrusted bytes without any I/O."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from function.reference import is_digest

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
SCHEMA1_MEDIA_TYPES = frozenset({DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED})
SINGLE_MEDIA_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST}) | SCHEMA1_MEDIA_TYPES

# The configs a container runtime runs: a manifest with one of these (and no artifactType) is an image.
RUNNABLE_CONFIGS = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)

# What cosign writes as the layers of `sha256-<hex>.sig`, `.att` and `.sbom` (sigstore/cosign pkg/types;
# "spdx+json" is cosign's own spelling, the others are the registered types and syft's).
COSIGN_LAYERS = {
    "sig": frozenset({"application/vnd.dev.cosign.simplesigning.v1+json"}),
    "att": frozenset({"application/vnd.dsse.envelope.v1+json"}),
    "sbom": frozenset(
        {
            "text/spdx",
            "text/spdx+json",
            "spdx+json",
            "application/spdx+json",
            "application/vnd.cyclonedx+json",
            "application/vnd.cyclonedx+xml",
            "application/vnd.syft+json",
        }
    ),
}

# Sigstore bundles, in both spellings Sigstore has used: "...bundle.v0.3+json" and "...bundle+json;version=0.3".
_BUNDLE_MEDIA_TYPE = re.compile(
    r"application/vnd\.dev\.sigstore\.bundle(?:\.v(?P<dotted>\d+\.\d+)\+json|\+json;version=(?P<param>\d+\.\d+))"
)

# Index types come first, and all of them must be present: distribution 2.8 serves the linux/amd64 child
# in place of a manifest list unless the list type is accepted, and answers 404 for OCI content unless
# OCI types are accepted. Schema 1 comes last: old images may exist only in that form.
ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_MANIFEST_V1_SIGNED))


class InvalidManifest(ValueError):
    """The bytes are not a manifest this auditor understands; the message says exactly why."""


class ContentMismatch(ValueError):
    """The bytes are not the ones their digest names: corruption or tampering, never content to judge."""


@dataclass(frozen=True, slots=True)
class Facts:
    """What the decisions need to know about a manifest, and all that is remembered of one fetched for an
    event: a few words, whatever the size of the manifest."""

    is_index: bool
    # A runnable image: a single manifest with a runnable config and no artifactType, a schema 1 image, or
    # an index with at least one entry that is not described as an artifact.
    runnable: bool
    # Digest of the OCI 1.1 `subject`, when the manifest names one.
    subject: str | None
    # "sig", "att" or "sbom" when the manifest has layers and every one is a cosign payload of that kind.
    cosign_kind: str | None
    # A Sigstore bundle (v0.3 or later) by its artifactType or a layer's media type: verified as a bundle.
    sigstore_bundle: bool = False

    @property
    def artifact(self) -> bool:
        return not self.runnable


@dataclass(frozen=True, slots=True)
class Layer:
    """A layer descriptor of a single manifest, as far as signatures need it (the blob is fetched apart)."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str]


@dataclass(frozen=True, slots=True)
class Manifest:
    digest: str
    media_type: str
    # Digests of `manifests[]` for an index or manifest list, in document order; () otherwise.
    children: tuple[str, ...]
    facts: Facts
    size: int
    # The layers of a single manifest that are well-formed descriptors (others are left out: a signature
    # check then fails for want of them); never remembered, only used while the manifest is at hand.
    layers: tuple[Layer, ...] = ()

    @property
    def is_index(self) -> bool:
        return self.facts.is_index

    @property
    def subject(self) -> str | None:
        return self.facts.subject


def is_bundle_media_type(media_type: str) -> bool:
    """Whether an artifact type or layer media type is a Sigstore bundle of v0.3 or later (CONTRACT.md)."""
    match = _BUNDLE_MEDIA_TYPE.fullmatch(media_type)
    if match is None:
        return False
    major, minor = (int(part) for part in (match["dotted"] or match["param"]).split("."))
    return (major, minor) >= (0, 3)


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def verified(body: bytes, expected: str | None) -> str:
    """The digest these bytes are named by, checked against ``expected`` when given.

    That is the sha256 of the raw bytes, whatever the registry labels them. Only a body that really is a
    signed schema 1 manifest may instead be named by its JWS payload (the body with the `signatures`
    stripped, as reconstructed from the protected header): registries name those so. Raises
    `ContentMismatch` when neither is ``expected``.
    """
    digest = digest_of(body)
    if digest == expected:
        return digest
    payload = _schema1_payload(body)
    if payload is not None:
        digest = digest_of(payload)
    if expected is not None and digest != expected:
        raise ContentMismatch(f"the bytes hash to {digest_of(body)}, not {expected}")
    return digest


def parse_manifest(body: bytes, content_type: str | None, digest: str) -> Manifest:
    """Parse an untrusted manifest (already verified against ``digest``); raise only `InvalidManifest`.

    The media type is the body's `mediaType`, else schema 1 when the body is one, else the Content-Type
    header (OCI makes the field optional). A header cannot make a body schema 1.
    """
    document = _json_object(body, "manifest")
    media_type = _media_type(document, content_type)
    if media_type in SCHEMA1_MEDIA_TYPES:
        return Manifest(digest, media_type, (), Facts(False, True, None, None), len(body))
    subject = _optional_descriptor_digest(document, "subject")
    artifact_type = _artifact_type(document)
    if media_type in INDEX_MEDIA_TYPES:
        entries = _entries(document)
        children = tuple(_descriptor_digest(entry, f"manifests[{i}]") for i, entry in enumerate(entries))
        facts = Facts(True, not all(map(_describes_artifact, entries)), subject, None)
        return Manifest(digest, media_type, children, facts, len(body))
    config = _config_media_type(document)
    runnable = artifact_type is None and config in RUNNABLE_CONFIGS
    layers = _layers(document)
    bundle = any(is_bundle_media_type(t) for t in (artifact_type or "", *(layer.media_type for layer in layers)))
    facts = Facts(False, runnable, subject, _cosign_kind(document), bundle)
    return Manifest(digest, media_type, (), facts, len(body), layers)


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except RecursionError:
        raise InvalidManifest(f"{what} is JSON nested too deeply to be a manifest") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, over-long integers
        raise InvalidManifest(f"{what} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidManifest(f"{what} must be a JSON object, not {_json_type(document)}")
    return document


def _media_type(document: dict[str, Any], content_type: str | None) -> str:
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise InvalidManifest(f"mediaType must be a string, not {_json_type(declared)}")
    if declared:
        media_type = declared
    elif document.get("schemaVersion") == 1:
        media_type = DOCKER_MANIFEST_V1_SIGNED if "signatures" in document else DOCKER_MANIFEST_V1
    else:
        media_type = bare_media_type(content_type)
        if media_type in SCHEMA1_MEDIA_TYPES:
            raise InvalidManifest(f"the registry labels it {media_type}, but the body is no schema 1 manifest")
    if not media_type:
        raise InvalidManifest("manifest has no mediaType field and the registry sent no Content-Type")
    if media_type not in INDEX_MEDIA_TYPES | SINGLE_MEDIA_TYPES:
        raise InvalidManifest(f"unsupported manifest media type {media_type!r:.200}")
    return media_type


def bare_media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, parameters dropped and lower-cased ("" when absent)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _entries(document: dict[str, Any]) -> list[object]:
    manifests = document.get("manifests")
    if not isinstance(manifests, list):
        raise InvalidManifest(f"index field manifests must be a list, not {_json_type(manifests)}")
    return manifests


def _describes_artifact(descriptor: object) -> bool:
    """An index entry whose descriptor types it as an artifact (what the referrers fallback tag holds:
    the OCI distribution spec makes `artifactType` mandatory there), never as an image or an index."""
    if not isinstance(descriptor, dict):
        return False
    artifact_type = descriptor.get("artifactType")
    return (
        isinstance(artifact_type, str)
        and bool(artifact_type)
        and artifact_type not in RUNNABLE_CONFIGS
        and descriptor.get("mediaType") not in INDEX_MEDIA_TYPES
    )


def _cosign_kind(document: dict[str, Any]) -> str | None:
    layers = document.get("layers")
    if not isinstance(layers, list) or not layers:
        return None
    types = {layer.get("mediaType") if isinstance(layer, dict) else None for layer in layers}
    return next((kind for kind, allowed in COSIGN_LAYERS.items() if types <= allowed), None)


def _layers(document: dict[str, Any]) -> tuple[Layer, ...]:
    layers = document.get("layers")
    if not isinstance(layers, list):
        return ()
    return tuple(layer for entry in layers if (layer := _layer(entry)) is not None)


def _layer(entry: object) -> Layer | None:
    if not isinstance(entry, dict):
        return None
    media_type, digest, size, annotations = (entry.get(k) for k in ("mediaType", "digest", "size", "annotations"))
    if not isinstance(media_type, str) or not is_digest(digest):
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return None
    if annotations is None:
        annotations = {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        return None
    return Layer(media_type, digest, size, annotations)


def _optional_descriptor_digest(document: dict[str, Any], field: str) -> str | None:
    if document.get(field) is None:
        return None
    return _descriptor_digest(document[field], field)


def _descriptor_digest(descriptor: object, where: str) -> str:
    if not isinstance(descriptor, dict):
        raise InvalidManifest(f"{where} must be a descriptor object, not {_json_type(descriptor)}")
    digest = descriptor.get("digest")
    if not is_digest(digest):
        raise InvalidManifest(f"{where}.digest must be 'sha256:' and 64 lowercase hex digits, not {digest!r:.100}")
    return digest


def _artifact_type(document: dict[str, Any]) -> str | None:
    artifact_type = document.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise InvalidManifest(f"artifactType must be a string, not {_json_type(artifact_type)}")
    return artifact_type or None


def _config_media_type(document: dict[str, Any]) -> str | None:
    config = document.get("config")
    media_type = config.get("mediaType") if isinstance(config, dict) else None
    return media_type if isinstance(media_type, str) and media_type else None


def _schema1_payload(body: bytes) -> bytes | None:
    """What a signed schema 1 manifest signed (libtrust's formatLength/formatTail scheme), or None when
    the body is not one."""
    try:
        document = _json_object(body, "signed schema 1 manifest")
    except InvalidManifest:
        return None
    signatures = document.get("signatures")
    if document.get("schemaVersion") != 1 or not isinstance(signatures, list) or not signatures:
        return None
    try:
        header = signatures[0].get("protected") if isinstance(signatures[0], dict) else None
        protected = _json_object(_base64url(header, "protected header"), "protected header")
    except InvalidManifest:
        return None
    length, tail = protected.get("formatLength"), protected.get("formatTail")
    if not isinstance(length, int) or isinstance(length, bool) or not 0 <= length <= len(body):
        return None
    try:
        return body[:length] + _base64url(tail, "formatTail")
    except InvalidManifest:
        return None


def _base64url(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidManifest(f"{what} must be a base64url string, not {_json_type(value)}")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as error:
        raise InvalidManifest(f"{what} is not base64url: {error}") from None


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number"}
    return "null" if value is None else names.get(type(value), "a number")
