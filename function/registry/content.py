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
from function.registry.platform import platform_of

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
SCHEMA1_MEDIA_TYPES = frozenset({DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED})
SINGLE_MEDIA_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST}) | SCHEMA1_MEDIA_TYPES

# The configs a container runtime runs: a manifest with one of these and a filesystem layer is an image,
# whatever its artifactType says (runtimes ignore artifactType).
RUNNABLE_CONFIGS = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)
# Filesystem layers a runtime unpacks: OCI `tar`, `tar+gzip`, `tar+zstd` and their non-distributable forms,
# Docker's `rootfs.diff.tar.gzip` and its foreign form. Matched by prefix, so that a form a runtime may
# know and this list does not (`+encrypted`, an uncompressed Docker diff) still counts: doubt makes an
# image, never an artifact.
FILESYSTEM_LAYER_PREFIXES = ("application/vnd.oci.image.layer.", "application/vnd.docker.image.rootfs.")
# An index under the referrers fallback tag whose entries are each fetched and judged: more entries than
# this are not taken for a referrers index (no subject has that many referrers, and each costs a call).
MAX_REFERRER_ENTRIES = 256

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
    # A runnable image: a single manifest with a runnable config and a filesystem layer (whatever its
    # artifactType), a schema 1 image, or an index with an entry that has a `platform`, is not described
    # as an artifact, or is an index itself (or with more than MAX_REFERRER_ENTRIES entries).
    runnable: bool
    # Digest of the OCI 1.1 `subject`, when the manifest names one.
    subject: str | None
    # "sig", "att" or "sbom" when the manifest has layers and every one is a cosign payload of that kind.
    cosign_kind: str | None
    # For an index that is not runnable by its descriptors: its entries' digests, each of which must be
    # judged an artifact in turn (descriptors are the index author's word, the manifests are not).
    entries: tuple[str, ...] = ()
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
    # The children whose descriptor types them as an index or manifest list: nested indexes, whose own
    # children are descendants too.
    nested: tuple[str, ...] = ()
    # The layers of a single manifest that are well-formed descriptors (others are left out: a signature
    # check then fails for want of them); never remembered, only used while the manifest is at hand.
    layers: tuple[Layer, ...] = ()
    # For an index: each child's platform as its descriptor names it ("" for none), aligned with
    # ``children``. Descriptive only (``function.registry.platform``).
    platforms: tuple[str, ...] = ()

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
    if payload is not None and not (_declares_schema1(body) and _declares_schema1(payload)):
        # Only the payload is named by the digest: a body that says it is anything but schema 1 (an index
        # whose JWS payload is some real list's bytes) would be read as what it says, not as what was named.
        raise ContentMismatch(
            f"the bytes match {digest} only through a JWS payload, but declare no schema 1 manifest; never read"
        )
    return digest


def parse_manifest(body: bytes, content_type: str | None, digest: str) -> Manifest:
    """Parse an untrusted manifest (already verified against ``digest``); raise only `InvalidManifest`.

    The media type is the body's `mediaType`, else schema 1 when the body is one, else the Content-Type
    header (OCI makes the field optional). A header cannot make a body schema 1.
    """
    document = _json_object(body, "manifest")
    if document.get("schemaVersion") == 1 and "signatures" in document:
        payload = _schema1_payload(body)
        if payload is not None and digest_of(payload) == digest and digest_of(body) != digest:
            # Named by its JWS payload: judged by that payload alone (schema 1, without children).
            if not _declares_schema1(payload):
                raise InvalidManifest(f"the JWS payload named {digest} is no schema 1 manifest")
            return Manifest(digest, DOCKER_MANIFEST_V1_SIGNED, (), Facts(False, True, None, None), len(body))
    media_type = _media_type(document, content_type)
    if media_type in SCHEMA1_MEDIA_TYPES:
        return Manifest(digest, media_type, (), Facts(False, True, None, None), len(body))
    subject = _optional_descriptor_digest(document, "subject")
    # Checked, and it names a Sigstore bundle; it decides no runnability: runtimes ignore it.
    artifact_type = _artifact_type(document)
    if media_type in INDEX_MEDIA_TYPES:
        entries = _entries(document)
        children = tuple(_descriptor_digest(entry, f"manifests[{i}]") for i, entry in enumerate(entries))
        runnable = len(entries) > MAX_REFERRER_ENTRIES or not all(map(_describes_artifact, entries))
        facts = Facts(True, runnable, subject, None, entries=() if runnable else children)
        nested = tuple(
            child
            for child, entry in zip(children, entries, strict=True)
            if isinstance(entry, dict) and entry.get("mediaType") in INDEX_MEDIA_TYPES
        )
        platforms = tuple(map(platform_of, entries))
        return Manifest(digest, media_type, children, facts, len(body), nested=nested, platforms=platforms)
    runnable = _runnable(document)
    layers = _layers(document)
    bundle = any(is_bundle_media_type(t) for t in (artifact_type or "", *(layer.media_type for layer in layers)))
    facts = Facts(False, runnable, subject, _cosign_kind(document), sigstore_bundle=bundle)
    return Manifest(digest, media_type, (), facts, len(body), layers=layers)


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
    the OCI distribution spec makes `artifactType` mandatory there), never as an image or an index, and
    without a `platform` (a runtime picks an entry by its platform)."""
    if not isinstance(descriptor, dict):
        return False
    artifact_type = descriptor.get("artifactType")
    return (
        isinstance(artifact_type, str)
        and bool(artifact_type)
        and artifact_type not in RUNNABLE_CONFIGS
        and descriptor.get("mediaType") not in INDEX_MEDIA_TYPES
        and "platform" not in descriptor
    )


def _runnable(document: dict[str, Any]) -> bool:
    """Whether a runtime runs this single manifest: an image config and a filesystem layer."""
    if bare_media_type(_config_media_type(document)) not in RUNNABLE_CONFIGS:
        return False
    layers = document.get("layers")
    return isinstance(layers, list) and any(
        isinstance(layer, dict)
        and isinstance(layer.get("mediaType"), str)
        and bare_media_type(layer["mediaType"]).startswith(FILESYSTEM_LAYER_PREFIXES)
        for layer in layers
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


def _declares_schema1(body: bytes) -> bool:
    """A JSON object with `schemaVersion` 1 and no `mediaType` but a schema 1 one."""
    try:
        document = _json_object(body, "schema 1 manifest")
    except InvalidManifest:
        return False
    declared = document.get("mediaType")
    return document.get("schemaVersion") == 1 and (declared is None or declared in SCHEMA1_MEDIA_TYPES)


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
