"""Servers the tests run on loopback: child processes on a free port, and HTTP servers on a thread."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self


def free_port() -> int:
    """A port nothing listens on right now; a server binding it later may still race, so rigs retry."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Loopback:
    """Something serving on 127.0.0.1:`port` from `with` until its end (or `stop()`)."""

    port = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class LoopbackProcess(Loopback):
    """A child process listening on a free port, ready once `ready()` holds.

    Subclasses give `command()` for `self.port`; it runs in `workdir`, a temporary folder of its own unless
    one is given, with its output in `log`, whose tail explains a failed start.
    """

    name = "server"
    startup_timeout = 15.0
    ready_path = "/"
    own_group = False  # its own session, so that stopping it also ends the children it starts
    attempts = 3

    def __init__(self, workdir: Path | None = None) -> None:
        self._workdir = workdir
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def workdir(self) -> Path:
        if self._temporary is not None:
            return Path(self._temporary.name)
        assert self._workdir is not None
        return self._workdir

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.ready_path, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def start(self) -> None:
        if self._workdir is None:
            self._temporary = tempfile.TemporaryDirectory(prefix=f"{self.name}-")
        for _ in range(self.attempts):
            # The free port may be taken between the probe and the server's bind: then start again.
            self.port = free_port()
            self._process = self._spawn()
            if self._wait_ready(self._process):
                return
        raise RuntimeError(f"{self.name} exited at start: {self.tail()}")

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("wb") as log:
            return subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=self.own_group,
            )

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> bool:
        """True once ready; False when it exits first, as when it lost the port."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._end()
                return False
            if self.ready():
                return True
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {self.startup_timeout}s: {self.tail()}")

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:] or "(no output)"
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        self._end()
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None

    def _end(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        self._signal(process, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._signal(process, signal.SIGKILL)
            process.wait()

    def _signal(self, process: subprocess.Popen[bytes], signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.own_group:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)


class ThreadedHTTPServer(Loopback):
    """A ThreadingHTTPServer on a free loopback port, served on a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        # A short poll interval keeps shutdown, and so every test's teardown, quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name=type(self).__name__, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
