"""The Cloud Functions of main.py served by the real functions-framework on loopback, and a tarball server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import requests

from tests.support.process import LoopbackProcess, ThreadedHTTPServer

ROOT = Path(__file__).resolve().parents[2]


class FunctionServer(LoopbackProcess):
    """``functions-framework --target <target>`` with its stdout kept, where the verdict lines go."""

    startup_timeout = 30.0

    def __init__(
        self, target: str, signature_type: str, env: dict[str, str], log_dir: Path, name: str | None = None
    ) -> None:
        super().__init__(log_dir)
        self.target = target
        self.signature_type = signature_type
        self.env = env
        self.name = name or target
        self.stdout_path = log_dir / f"{self.name}.stdout"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.stderr"

    def command(self) -> list[str]:
        return [
            str(Path(sys.executable).with_name("functions-framework")),
            f"--target={self.target}",
            f"--signature-type={self.signature_type}",
            f"--source={ROOT / 'main.py'}",
            "--host=127.0.0.1",
            f"--port={self.port}",
        ]

    def ready(self) -> bool:
        """Any answer will do: GET / runs the function, which may well refuse it."""
        try:
            requests.get(self.url, timeout=1)
        except requests.RequestException:
            return False
        return True

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        with self.stdout_path.open("wb") as out, self.log.open("wb") as err:
            return subprocess.Popen(self.command(), cwd=ROOT, env=env, stdout=out, stderr=err)

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


class TarballServer(ThreadedHTTPServer):
    """Serves ``/<name>`` from a dict, as GitHub serves a commit's tarball.

    A name in ``gates`` is served only once its event is set (a slow download), at most ``GATE_SECONDS`` on."""

    GATE_SECONDS = 60.0

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.gates: dict[str, threading.Event] = {}
        super().__init__(self._handler())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                gate = server.gates.get(self.path.lstrip("/"))
                if gate is not None:
                    gate.wait(server.GATE_SECONDS)
                body = server.files.get(self.path.lstrip("/"))
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler


class CommitsServer(ThreadedHTTPServer):
    """Answers ``GET /repos/kubernetes/k8s.io/commits/<branch>`` as GitHub's "Get a commit" endpoint does
    (https://docs.github.com/en/rest/commits/commits#get-a-commit): ``sha`` and ``commit.committer.date``,
    among other fields, for the head set in ``heads``."""

    def __init__(self) -> None:
        self.heads: dict[str, tuple[str, str]] = {}
        self.requests: list[str] = []
        super().__init__(self._handler())

    @property
    def template(self) -> str:
        """What ``AUDITOR_HEAD_URL`` must hold."""
        return f"{self.url}/repos/kubernetes/k8s.io/commits/{{branch}}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                branch = self.path.rpartition("/commits/")[2]
                head = server.heads.get(branch) if self.path.startswith("/repos/kubernetes/k8s.io/") else None
                if head is None:
                    answer_json(self, 404, {"message": "No commit found for SHA: " + branch})
                    return
                sha, date = head
                person = {"name": "k8s-ci-robot", "email": "k8s-ci-robot@example.com", "date": date}
                answer_json(
                    self,
                    200,
                    {
                        "sha": sha,
                        "node_id": "C_test",
                        "commit": {"author": person, "committer": person, "message": "Merge pull request"},
                        "url": f"{server.url}/repos/kubernetes/k8s.io/commits/{sha}",
                        "parents": [],
                        "files": [],
                    },
                )

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler


def answer_json(handler: BaseHTTPRequestHandler, status: int, document: dict[str, Any]) -> None:
    """Answer ``document`` as a JSON API does."""
    body = json.dumps(document).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=utf-8")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
