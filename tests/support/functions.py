"""The two Cloud Functions served by the real functions-framework on loopback, and a tarball server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0


class FunctionServer:
    """``functions-framework --target <target>`` with its stdout kept, where the verdict lines go."""

    def __init__(
        self, target: str, signature_type: str, env: dict[str, str], log_dir: Path, name: str | None = None
    ) -> None:
        self.target = target
        self.signature_type = signature_type
        self.env = env
        self.port = free_port()
        self.stdout_path = log_dir / f"{name or target}.stdout"
        self.stderr_path = log_dir / f"{name or target}.stderr"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FunctionServer:
        command = [
            str(Path(sys.executable).with_name("functions-framework")),
            f"--target={self.target}",
            f"--signature-type={self.signature_type}",
            f"--source={ROOT / 'main.py'}",
            "--host=127.0.0.1",
            f"--port={self.port}",
        ]
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self._process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.target} exited: {self.stderr_path.read_text()[-2000:]}")
            try:
                requests.get(self.url, timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"{self.target} did not start within {STARTUP_TIMEOUT}s")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def lines(self) -> list[dict[str, Any]]:
        """Every JSON line the function wrote to stdout."""
        out = []
        for line in self.stdout_path.read_text().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def verdicts(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if "verdict" in line]

    def wait_for_verdicts(self, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            verdicts = self.verdicts()
            if len(verdicts) >= count:
                return verdicts
            time.sleep(0.2)
        raise AssertionError(f"{len(self.verdicts())} verdict lines after {timeout}s, expected {count}")


class TarballServer:
    """Serves ``/<name>`` from a dict, as GitHub serves a commit's tarball."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        handler = self._handler()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> TarballServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = server.files.get(self.path.lstrip("/"))
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler
