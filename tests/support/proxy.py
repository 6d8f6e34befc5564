"""An HTTP proxy on loopback in front of a real registry: records requests and injects faults.

Tests point a client at the proxy's host and assert on what the "registry" received: how many requests,
which methods and paths. Faults (throttling, server errors, dropped connections, tampered bodies) and a
bearer-token challenge are switched on per test, and a ``Responder`` may answer in place of the registry.
Load as a pytest plugin (`-p tests.support.proxy`) for the function-scoped `registry_proxy` fixture (it needs
the `registry` fixture of tests.support.registry).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.process import ThreadedHTTPServer
from tests.support.registry import RegistryServer

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
TOKEN_PATH = "/token"
SERVICE = "test-registry"
_REPOSITORY_IN_PATH = re.compile(r"^/v2/(.+?)/(?:manifests|blobs|tags)/")

Tamper = Callable[[bytes], bytes]
# A reply given in place of the registry's: status, headers, body.
LocalAnswer = tuple[int, dict[str, str], bytes]
# (method, path, query) -> the reply to give instead of the registry's, or None to forward the request.
Responder = Callable[[str, str, str], LocalAnswer | None]


@dataclass(frozen=True)
class _Trickle:
    seconds_per_byte: float
    path_contains: str


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: str
    authorization: str | None


@dataclass
class _Fault:
    remaining: int | None  # None: until healed
    status: int | None  # None: drop the connection without answering
    retry_after: str | None


class RegistryProxy(ThreadedHTTPServer):
    """Forwards to `upstream` (e.g. "http://127.0.0.1:5000") from 127.0.0.1:<free port>."""

    def __init__(self, upstream: str, *, require_token: bool = False, token_lifetime: int | None = 300) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.netloc
        self.require_token = require_token
        self.token_lifetime = token_lifetime
        self._lock = threading.Lock()
        self._recorded: list[Recorded] = []
        self._fault: _Fault | None = None
        self._path_faults: dict[str, int] = {}  # path fragment -> status, until healed
        self._tamper: Tamper | None = None
        self._trickle: _Trickle | None = None
        self._relabel: str | None = None
        self._responder: Responder | None = None
        self._issued: dict[str, str] = {}  # token -> the repository it grants
        # Where the bearer challenge sends clients for a token; None: this proxy's own /token.
        self.realm: str | None = None
        super().__init__(_handler_for(self))

    # --- what tests see ---

    @property
    def requests(self) -> list[Recorded]:
        """Every request received, token requests and failed ones included, in arrival order."""
        with self._lock:
            return list(self._recorded)

    def registry_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path != TOKEN_PATH]

    def token_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == TOKEN_PATH]

    def clear(self) -> None:
        with self._lock:
            self._recorded.clear()

    # --- fault injection ---

    def fail_next(self, n: int, status: int = 429, retry_after: str | None = "1") -> None:
        """Answer the next `n` registry requests with `status` (and Retry-After, unless None)."""
        with self._lock:
            self._fault = _Fault(n, status, retry_after)

    def fail_always(self, status: int = 503) -> None:
        with self._lock:
            self._fault = _Fault(None, status, None)

    def fail_paths(self, fragment: str, status: int = 503) -> None:
        """Answer every registry request whose path contains `fragment` with `status`, until healed."""
        with self._lock:
            self._path_faults[fragment] = status

    def drop_next(self, n: int) -> None:
        """Close the connection without an answer on the next `n` registry requests."""
        with self._lock:
            self._fault = _Fault(n, None, None)

    def tamper(self, change: Tamper | None) -> None:
        """Pass bodies of successful manifest GETs through `change` (None: stop), headers untouched."""
        with self._lock:
            self._tamper = change

    def trickle(self, seconds_per_byte: float, *, path_contains: str = "/manifests/") -> None:
        """Send the bodies of answers to matching paths one byte at a time, this far apart (headers at once)."""
        with self._lock:
            self._trickle = _Trickle(seconds_per_byte, path_contains)

    def relabel(self, content_type: str | None) -> None:
        """Answer successful manifest GETs with this Content-Type instead of the registry's (None: stop)."""
        with self._lock:
            self._relabel = content_type

    def serve(self, responder: Responder | None) -> None:
        """Let `responder` answer requests in place of the registry (None: stop)."""
        with self._lock:
            self._responder = responder

    def heal(self) -> None:
        with self._lock:
            self._fault = None
            self._tamper = None
            self._path_faults.clear()
            self._trickle = None
            self._relabel = None

    # --- used by the handler ---

    def _record(self, request: Recorded) -> None:
        with self._lock:
            self._recorded.append(request)

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fragment, status in self._path_faults.items():
                if fragment in path:
                    return _Fault(None, status, None)
            fault = self._fault
            if fault is None:
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._fault = None
            return fault

    def _issue_token(self, scope: str) -> str:
        token = secrets.token_urlsafe(16)
        repository = scope.split(":")[1] if scope.count(":") == 2 else ""
        with self._lock:
            self._issued[token] = repository
        return token

    def _authorized(self, path: str, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        with self._lock:
            granted = self._issued.get(authorization[len("Bearer ") :])
        if granted is None:
            return False
        match = _REPOSITORY_IN_PATH.match(path)
        return match is None or match.group(1) == granted

    def _challenge(self, path: str) -> str:
        challenge = f'Bearer realm="{self.realm or self.url + TOKEN_PATH}",service="{SERVICE}"'
        match = _REPOSITORY_IN_PATH.match(path)
        if match:
            challenge += f',scope="repository:{match.group(1)}:pull"'
        return challenge

    def _tamper_for(self, method: str, path: str) -> Tamper | None:
        with self._lock:
            return self._tamper if method == "GET" and "/manifests/" in path else None

    def _label_for(self, method: str, path: str) -> str | None:
        with self._lock:
            return self._relabel if method == "GET" and "/manifests/" in path else None

    def _trickle_for(self, path: str) -> float | None:
        with self._lock:
            trickle = self._trickle
        return trickle.seconds_per_byte if trickle is not None and trickle.path_contains in path else None

    def _answer_for(self, method: str, path: str, query: str) -> LocalAnswer | None:
        with self._lock:
            responder = self._responder
        return responder(method, path, query) if responder is not None else None


def _handler_for(proxy: RegistryProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._handle()

        def do_HEAD(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def do_PATCH(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: tests assert on recorded requests, not on logs."""

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            proxy._record(Recorded(self.command, parts.path, parts.query, self.headers.get("Authorization")))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if parts.path == TOKEN_PATH:
                self._answer_token(parts.query)
                return
            fault = proxy._take_fault(parts.path)
            if fault is not None:
                self._answer_fault(fault)
                return
            if proxy.require_token and not proxy._authorized(parts.path, self.headers.get("Authorization")):
                self._answer_json(
                    401,
                    {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                    {"WWW-Authenticate": proxy._challenge(parts.path)},
                )
                return
            local = proxy._answer_for(self.command, parts.path, parts.query)
            if local is not None:
                status, headers, payload = local
                self._answer(status, payload, headers)
                return
            self._forward(body, proxy._tamper_for(self.command, parts.path))

        def _forward(self, body: bytes, tamper: Tamper | None) -> None:
            upstream = http.client.HTTPConnection(proxy.upstream_host, timeout=30)
            try:
                # The client's own Host goes upstream, so distribution's absolute URLs point at the proxy.
                upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        upstream.putheader(name, value)
                upstream.putheader("Content-Length", str(len(body)))
                upstream.endheaders(body)
                response = upstream.getresponse()
                answer = response.read()
            finally:
                upstream.close()
            if tamper is not None and response.status == 200:
                answer = tamper(answer)
            label = proxy._label_for(self.command, urlsplit(self.path).path) if response.status == 200 else None
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() in HOP_BY_HOP or name.lower() == "content-length":
                    continue
                self.send_header(name, label if label is not None and name.lower() == "content-type" else value)
            length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(answer))
            self.send_header("Content-Length", length or "0")
            self.end_headers()
            if self.command != "HEAD":
                self._write(answer)

        def _write(self, body: bytes) -> None:
            pause = proxy._trickle_for(urlsplit(self.path).path)
            if pause is None:
                self.wfile.write(body)
                return
            try:
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(pause)
            except OSError:
                self.close_connection = True  # the client gave up, as it should

        def _answer_token(self, query: str) -> None:
            scope = parse_qs(query).get("scope", [""])[0]
            document: dict[str, object] = {"token": proxy._issue_token(scope)}
            if proxy.token_lifetime is not None:
                document["expires_in"] = proxy.token_lifetime
            self._answer_json(200, document, {})

        def _answer_fault(self, fault: _Fault) -> None:
            if fault.status is None:
                self.close_connection = True
                return
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            code = "TOOMANYREQUESTS" if fault.status == 429 else "UNAVAILABLE"
            self._answer_json(fault.status, {"errors": [{"code": code, "message": "injected fault"}]}, headers)

        def _answer_json(self, status: int, document: dict[str, object], headers: dict[str, str]) -> None:
            self._answer(status, json.dumps(document).encode(), {"Content-Type": "application/json", **headers})

        def _answer(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self._write(payload)

    return Handler


def manifest_answer(media_type: str, body: bytes) -> LocalAnswer:
    """A registry's 200 to a manifest request for ``body``, for a ``Responder`` to give."""
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    return 200, {"Content-Type": media_type, "Docker-Content-Digest": digest}, body


@pytest.fixture
def registry_proxy(registry: RegistryServer) -> Iterator[RegistryProxy]:
    """A fresh proxy over the session's registry: no faults, nothing recorded."""
    with RegistryProxy(registry.url) as proxy:
        yield proxy
