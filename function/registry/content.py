"""The OCI content model: what a registry manifest says, parsed from untrusted bytes without any I/O."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, TypeGuard

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
SINGLE_MEDIA_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_MANIFEST_V1_SIGNED})

# Index types come first, and all of them must be present: distribution 2.8 serves the linux/amd64 child
# in place of a manifest list unless the list type is accepted, and answers 404 for OCI content unless
# OCI types are accepted. Schema 1 comes last: old images may exist only in that form.
ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_MANIFEST_V1_SIGNED))

DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")


class InvalidManifest(ValueError):
    """The bytes are not a manifest this auditor understands; the message says exactly why."""


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    # Digests of `manifests[]` for an index or manifest list, in document order; () otherwise.
    children: tuple[str, ...]
    # Digest of the OCI 1.1 `subject`: set on referrers (signatures, SBOMs, attestations as artifacts).
    subject: str | None
    artifact_type: str | None
    size: int

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES


def is_digest(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and DIGEST_PATTERN.fullmatch(value) is not None


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def manifest_digest(body: bytes, content_type: str | None) -> str:
    """The digest a registry names these bytes by.

    That is the sha256 of the body for every type but signed schema 1, which registries name by its JWS
    payload: the body with the `signatures` stripped, as reconstructed from the protected header.
    """
    if _bare_media_type(content_type) != DOCKER_MANIFEST_V1_SIGNED:
        return digest_of(body)
    return digest_of(_jws_payload(body))


def parse_manifest(body: bytes, content_type: str | None, digest: str) -> Manifest:
    """Parse an untrusted manifest; raise only `InvalidManifest`.

    The media type is the body's `mediaType`, else the Content-Type header (OCI makes the field optional).
    """
    document = _json_object(body, "manifest")
    media_type = _media_type(document, content_type)
    if media_type == DOCKER_MANIFEST_V1_SIGNED:
        return Manifest(digest, media_type, (), None, None, len(body))
    children = _children(document) if media_type in INDEX_MEDIA_TYPES else ()
    subject = _optional_descriptor_digest(document, "subject")
    artifact_type = _artifact_type(document)
    if artifact_type is None and subject is not None:
        # The referrers API's rule: an artifact without artifactType is typed by its config.
        artifact_type = _config_media_type(document)
    return Manifest(digest, media_type, children, subject, artifact_type, len(body))


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
    media_type = declared or _bare_media_type(content_type)
    if not media_type:
        raise InvalidManifest("manifest has no mediaType field and the registry sent no Content-Type")
    if media_type not in INDEX_MEDIA_TYPES | SINGLE_MEDIA_TYPES:
        raise InvalidManifest(f"unsupported manifest media type {media_type!r}")
    return media_type


def _bare_media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _children(document: dict[str, Any]) -> tuple[str, ...]:
    manifests = document.get("manifests")
    if not isinstance(manifests, list):
        raise InvalidManifest(f"index field manifests must be a list, not {_json_type(manifests)}")
    return tuple(_descriptor_digest(entry, f"manifests[{i}]") for i, entry in enumerate(manifests))


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


def _jws_payload(body: bytes) -> bytes:
    """Rebuild what a schema 1 manifest signed (libtrust's formatLength/formatTail scheme)."""
    document = _json_object(body, "signed schema 1 manifest")
    signatures = document.get("signatures")
    if not isinstance(signatures, list) or not signatures or not isinstance(signatures[0], dict):
        raise InvalidManifest("signed schema 1 manifest has no signatures list")
    protected = _json_object(_base64url(signatures[0].get("protected"), "protected header"), "protected header")
    length, tail = protected.get("formatLength"), protected.get("formatTail")
    if not isinstance(length, int) or isinstance(length, bool) or not 0 <= length <= len(body):
        raise InvalidManifest(f"protected header has an invalid formatLength {length!r:.50}")
    return body[:length] + _base64url(tail, "formatTail")


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
