"""A Sigstore instance of the tests' own: Fulcio-like CAs, a CT log, a Rekor log, and a keyless signer.

Everything is minted with `cryptography` the way the public-good instance does it (P-384 CAs, P-256 leaf with
the Fulcio issuer extension and an embedded SCT, ECDSA P-256 Rekor key whose log ID is the sha256 of its DER
SubjectPublicKeyInfo), so the verifier under test cannot tell it from the real thing. Integration tests use:

    instance = SigstoreInstance.create()
    trust_root_bytes = instance.trusted_root_json()
    signer = instance.signer()              # krel-trust@..., https://accounts.google.com
    signer.sig_layer("sha256:<hex>")        # a .sig layer (function.signing.Layer)
    signer.att_layer("sha256:<hex>")        # a .att layer
    signer.bundle("sha256:<hex>")           # a v0.3 Sigstore bundle with a one-entry inclusion proof
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from function.signing.layers import DSSE_MEDIA_TYPE, SIMPLE_SIGNING_MEDIA_TYPE, Layer

KREL_IDENTITY = "krel-trust@k8s-releng-prod.iam.gserviceaccount.com"
GOOGLE_ISSUER = "https://accounts.google.com"
ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
LEGACY_ISSUER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
SCT_LIST_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
REKOR_ORIGIN = "rekor.sigstore.test"
IN_TOTO = "application/vnd.in-toto+json"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def log_id(key: ec.EllipticCurvePrivateKey) -> bytes:
    return hashlib.sha256(spki(key.public_key())).digest()


def _der_utf8_string(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


def _der_octet_string(raw: bytes) -> bytes:
    length = len(raw)
    assert length < 65536
    header = (
        bytes([length])
        if length < 128
        else (bytes([0x81, length]) if length < 256 else b"\x82" + struct.pack("!H", length))
    )
    return b"\x04" + header + raw


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sigstore.test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca(
    key: ec.EllipticCurvePrivateKey,
    name: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    start: datetime,
    *,
    path_length: int | None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if path_length == 0:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    return builder.sign(issuer_key, hashes.SHA384())


@dataclass
class SigstoreInstance:
    """Fulcio (root + intermediate), a CT log and a Rekor log, all with fresh keys."""

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate
    ct_key: ec.EllipticCurvePrivateKey
    rekor_key: ec.EllipticCurvePrivateKey
    start: datetime
    next_log_index: int = field(default=1000)

    @classmethod
    def create(cls, start: datetime | None = None) -> SigstoreInstance:
        start = (start or datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
        root_key = ec.generate_private_key(ec.SECP384R1())
        intermediate_key = ec.generate_private_key(ec.SECP384R1())
        root = _ca(root_key, _name("sigstore"), root_key, _name("sigstore"), start, path_length=1)
        intermediate = _ca(
            intermediate_key, _name("sigstore-intermediate"), root_key, _name("sigstore"), start, path_length=0
        )
        return cls(
            root_key,
            root,
            intermediate_key,
            intermediate,
            ec.generate_private_key(ec.SECP256R1()),
            ec.generate_private_key(ec.SECP256R1()),
            start,
        )

    def trusted_root_json(self, *, with_ct_log: bool = True) -> bytes:
        """This instance's trusted_root.json in the Sigstore format (mediaType trustedroot 0.1)."""
        valid_for = {"start": self.start.strftime("%Y-%m-%dT%H:%M:%SZ")}

        def log(url: str, key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": b64(spki(key.public_key())),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": valid_for,
                },
                "logId": {"keyId": b64(log_id(key))},
            }

        der = serialization.Encoding.DER
        root = {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log("https://rekor.sigstore.test", self.rekor_key)],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "sigstore.test", "commonName": "sigstore"},
                    "uri": "https://fulcio.sigstore.test",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": b64(self.intermediate.public_bytes(der))},
                            {"rawBytes": b64(self.root.public_bytes(der))},
                        ]
                    },
                    "validFor": valid_for,
                }
            ],
            "ctlogs": [log("https://ctfe.sigstore.test", self.ct_key)] if with_ct_log else [],
            "timestampAuthorities": [],
        }
        return json.dumps(root).encode()

    def signer(
        self,
        identity: str = KREL_IDENTITY,
        issuer: str = GOOGLE_ISSUER,
        *,
        at: datetime | None = None,
        with_sct: bool = True,
    ) -> KeylessSigner:
        """A signer holding a 10-minute Fulcio certificate issued at `at` (default: now)."""
        at = (at or datetime.now(UTC)).replace(microsecond=0)
        key = ec.generate_private_key(ec.SECP256R1())
        san: x509.GeneralName = (
            x509.UniformResourceIdentifier(identity)
            if ":" in identity and "@" not in identity.split(":")[0]
            else x509.RFC822Name(identity)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(at)
            .not_valid_after(at + timedelta(minutes=10))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.intermediate_key.public_key()), critical=False
            )
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(x509.UnrecognizedExtension(LEGACY_ISSUER_OID, issuer.encode()), critical=False)
            .add_extension(x509.UnrecognizedExtension(ISSUER_OID, _der_utf8_string(issuer)), critical=False)
        )
        if with_sct:
            # The SCT signs the precertificate: this very TBS without the SCT extension, which goes last.
            precertificate = builder.sign(self.intermediate_key, hashes.SHA384())
            sct = self._sct(precertificate.tbs_certificate_bytes, at)
            builder = builder.add_extension(
                x509.UnrecognizedExtension(
                    SCT_LIST_OID, _der_octet_string(struct.pack("!H", len(sct) + 2) + struct.pack("!H", len(sct)) + sct)
                ),
                critical=False,
            )
        return KeylessSigner(self, key, builder.sign(self.intermediate_key, hashes.SHA384()))

    def _sct(self, tbs: bytes, at: datetime) -> bytes:
        """An RFC 6962 v1 SCT for a precertificate entry, signed by the CT log key."""
        timestamp = int(at.timestamp() * 1000)
        issuer_key_hash = hashlib.sha256(spki(self.intermediate_key.public_key())).digest()
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp, 1)
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + struct.pack("!H", 0)
        )
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return (
            struct.pack("!B", 0)
            + log_id(self.ct_key)
            + struct.pack("!QH", timestamp, 0)
            + struct.pack("!BBH", 4, 3, len(signature))
            + signature
        )

    def log_entry(self, body: dict[str, Any], integrated_time: int) -> dict[str, Any]:
        """A Rekor entry for `body` with its SET: the Payload of a dev.sigstore.cosign/bundle annotation."""
        log_index = self.next_log_index
        self.next_log_index += 1
        payload: dict[str, int | str] = {
            "body": b64(json.dumps(body).encode()),
            "integratedTime": integrated_time,
            "logIndex": log_index,
            "logID": log_id(self.rekor_key).hex(),
        }
        signed_entry_timestamp = self.rekor_key.sign(rfc8785.dumps(payload), ec.ECDSA(hashes.SHA256()))
        return {"SignedEntryTimestamp": b64(signed_entry_timestamp), "Payload": payload}

    def checkpoint(self, root_hash: bytes, tree_size: int) -> str:
        """A signed note over the log's root, as Rekor signs its checkpoints."""
        note = f"{REKOR_ORIGIN} - 1\n{tree_size}\n{b64(root_hash)}\n"
        signature = self.rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        return f"{note}\n\u2014 {REKOR_ORIGIN} {b64(log_id(self.rekor_key)[:4] + signature)}\n"


@dataclass
class KeylessSigner:
    """A keyless signer of the instance: its ephemeral key and Fulcio certificate."""

    instance: SigstoreInstance
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def chain_pem(self) -> str:
        return "".join(
            c.public_bytes(serialization.Encoding.PEM).decode()
            for c in (self.instance.intermediate, self.instance.root)
        )

    def integrated_time(self) -> int:
        """A time inside the certificate's validity, as Rekor's would be."""
        return int((self.certificate.not_valid_before_utc + timedelta(minutes=1)).timestamp())

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def simple_signing_payload(self, digest: str, reference: str = "registry.k8s.io/pause") -> bytes:
        payload = {
            "critical": {
                "identity": {"docker-reference": reference},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
        return json.dumps(payload, separators=(",", ":")).encode()

    def hashedrekord(self, payload: bytes, signature: bytes) -> dict[str, Any]:
        return {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
                "signature": {"content": b64(signature), "publicKey": {"content": b64(self.certificate_pem.encode())}},
            },
        }

    def sig_layer(self, digest: str, *, payload: bytes | None = None, integrated_time: int | None = None) -> Layer:
        """A cosign .sig layer signing `digest` (or the given payload), logged with a SET."""
        payload = payload if payload is not None else self.simple_signing_payload(digest)
        signature = self.sign(payload)
        entry = self.instance.log_entry(
            self.hashedrekord(payload, signature), integrated_time or self.integrated_time()
        )
        return _layer(
            SIMPLE_SIGNING_MEDIA_TYPE,
            payload,
            {
                "dev.cosignproject.cosign/signature": b64(signature),
                "dev.sigstore.cosign/certificate": self.certificate_pem,
                "dev.sigstore.cosign/chain": self.chain_pem,
                "dev.sigstore.cosign/bundle": json.dumps(entry),
            },
        )

    def statement(self, digest: str) -> bytes:
        return json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "registry.k8s.io/pause", "digest": {"sha256": digest.removeprefix("sha256:")}}],
                "predicateType": "https://slsa.dev/provenance/v1",
                "predicate": {"buildDefinition": {"buildType": "https://k8s.io/promo-tools"}},
            }
        ).encode()

    def envelope(self, digest: str) -> dict[str, Any]:
        """A DSSE envelope of an in-toto statement about `digest`, signed over its PAE."""
        statement = self.statement(digest)
        pae = b"DSSEv1 %d %b %d %b" % (len(IN_TOTO), IN_TOTO.encode(), len(statement), statement)
        return {
            "payloadType": IN_TOTO,
            "payload": b64(statement),
            "signatures": [{"keyid": "", "sig": b64(self.sign(pae))}],
        }

    def att_layer(self, digest: str) -> Layer:
        """A cosign .att layer: the DSSE envelope as blob, logged as an intoto entry with a SET."""
        envelope = self.envelope(digest)
        blob = json.dumps(envelope).encode()
        body = {
            "apiVersion": "0.0.2",
            "kind": "intoto",
            "spec": {
                "content": {
                    "hash": {"algorithm": "sha256", "value": hashlib.sha256(blob).hexdigest()},
                    "payloadHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(base64.b64decode(envelope["payload"])).hexdigest(),
                    },
                }
            },
        }
        entry = self.instance.log_entry(body, self.integrated_time())
        return _layer(
            DSSE_MEDIA_TYPE,
            blob,
            {
                "dev.sigstore.cosign/certificate": self.certificate_pem,
                "dev.sigstore.cosign/chain": self.chain_pem,
                "dev.sigstore.cosign/bundle": json.dumps(entry),
            },
        )

    def bundle(self, digest: str) -> bytes:
        """A v0.3 Sigstore bundle of a DSSE statement about `digest`: a dsse 0.0.1 entry alone in its log
        (so its inclusion proof is empty and the root hash is the leaf hash), with SET and signed checkpoint."""
        envelope = self.envelope(digest)
        payload = base64.b64decode(envelope["payload"])
        body = {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest(),
                },
                "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                "signatures": [
                    {"signature": envelope["signatures"][0]["sig"], "verifier": b64(self.certificate_pem.encode())}
                ],
            },
        }
        logged = self.instance.log_entry(body, self.integrated_time())
        entry = logged["Payload"]
        canonical_body = base64.b64decode(entry["body"])
        root_hash = hashlib.sha256(b"\x00" + canonical_body).digest()
        bundle = {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": b64(self.certificate.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [
                    {
                        "logIndex": str(entry["logIndex"]),
                        "logId": {"keyId": b64(bytes.fromhex(entry["logID"]))},
                        "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                        "integratedTime": str(entry["integratedTime"]),
                        "inclusionPromise": {"signedEntryTimestamp": logged["SignedEntryTimestamp"]},
                        "inclusionProof": {
                            "logIndex": "0",
                            "rootHash": b64(root_hash),
                            "treeSize": "1",
                            "hashes": [],
                            "checkpoint": {"envelope": self.instance.checkpoint(root_hash, 1)},
                        },
                        "canonicalizedBody": entry["body"],
                    }
                ],
            },
            "dsseEnvelope": envelope,
        }
        return json.dumps(bundle).encode()


def _layer(media_type: str, blob: bytes, annotations: dict[str, str]) -> Layer:
    return Layer(media_type, f"sha256:{hashlib.sha256(blob).hexdigest()}", len(blob), annotations, blob)
