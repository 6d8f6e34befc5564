"""Google-signed ID tokens on loopback: a key of our own, the server that publishes its certificate, and
the authenticated push that the Pub/Sub emulator does not do.

``CertServer`` answers ``GET /oauth2/v1/certs`` in the format of https://www.googleapis.com/oauth2/v1/certs
(a JSON object of key id to PEM X.509 certificate), which google-auth's ``id_token.verify_token`` reads.
``Signer`` mints tokens with google-auth's own ``jwt.encode`` and claims as Google writes them for a service
account (https://cloud.google.com/docs/authentication/token-types#id-contents): ``iss``, ``aud``,
``email``, ``email_verified``, ``iat``, ``exp``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from function.settings import Oidc
from tests.support.functions import answer_json
from tests.support.process import ThreadedHTTPServer

SCHEDULER = "auditor-scheduler@test-project.iam.gserviceaccount.com"
QUEUE = "auditor-queue@test-project.iam.gserviceaccount.com"
GOOGLE = "https://accounts.google.com"


class Signer:
    """An RSA key standing for one of Google's token-signing keys, and its self-signed certificate."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._signer = crypt.RSASigner.from_string(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            key_id=kid,
        )
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, kid)])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        self.certificate = certificate.public_bytes(serialization.Encoding.PEM).decode()

    def token(
        self,
        email: str,
        audience: str,
        *,
        issuer: str = GOOGLE,
        email_verified: bool = True,
        issued_ago: float = 0.0,
        lifetime: float = 3600.0,
    ) -> str:
        now = int(time.time() - issued_ago)
        claims = {
            "iss": issuer,
            "aud": audience,
            "azp": "112233445566778899000",
            "sub": "112233445566778899000",
            "email": email,
            "email_verified": email_verified,
            "iat": now,
            "exp": now + int(lifetime),
        }
        encoded: bytes = jwt.encode(self._signer, claims)
        return encoded.decode()


class CertServer(ThreadedHTTPServer):
    """Publishes the certificates of ``signers`` as Google publishes its own."""

    def __init__(self, *signers: Signer) -> None:
        self.certificates = {signer.kid: signer.certificate for signer in signers}
        super().__init__(self._handler())

    @property
    def certs_url(self) -> str:
        """What ``AUDITOR_OIDC_CERTS_URL`` must hold."""
        return f"{self.url}/oauth2/v1/certs"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/oauth2/v1/certs":
                    answer_json(self, 200, server.certificates)
                else:
                    answer_json(self, 404, {"error": "not found"})

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler


class AuthenticatedPush(ThreadedHTTPServer):
    """What a push subscription with ``oidcToken`` does and the Pub/Sub emulator does not
    (https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions): each push is forwarded to
    ``target`` with ``Authorization: Bearer`` a token of ``email`` for ``audience``."""

    def __init__(self, target: str, signer: Signer, email: str, audience: str) -> None:
        self.target, self.signer, self.email, self.audience = target, signer, email, audience
        super().__init__(self._handler())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers: dict[str, Any] = {
                    "Content-Type": self.headers.get("Content-Type") or "application/json",
                    "Authorization": "Bearer " + server.signer.token(server.email, server.audience),
                }
                try:
                    answer = requests.post(server.target, data=body, headers=headers, timeout=600)
                    status, content = answer.status_code, answer.content
                except requests.RequestException:
                    status, content = 502, b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler


# --- a pytest plugin (tests/conftest.py) ------------------------------------------------------------

GOOGLE_KEY = Signer("google-key-1")
SYNC_URL = "https://us-central1-test-project.cloudfunctions.net/auditor-sync"


@pytest.fixture(scope="session")
def google_certs() -> Iterator[CertServer]:
    """Google's key server on loopback, publishing ``GOOGLE_KEY``."""
    with CertServer(GOOGLE_KEY) as server:
        yield server


def invokers(certs: CertServer, *emails: str, audience: str = SYNC_URL) -> Oidc:
    """The OIDC settings of a ``sync_index`` at ``audience`` that lets ``emails`` in."""
    return Oidc(audience, frozenset(emails or (SCHEDULER, QUEUE)), certs.certs_url)


def bearer(email: str = SCHEDULER, audience: str = SYNC_URL, **claims: Any) -> str:
    """An ``Authorization`` value as Cloud Scheduler or Pub/Sub send it."""
    return "Bearer " + GOOGLE_KEY.token(email, audience, **claims)
