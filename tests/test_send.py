"""The capped body read, against a loopback server that answers as slowly or as largely as told."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
import urllib3.exceptions

from function.deadline import Deadline
from function.registry._http import TransportError
from function.registry._send import MAX_BODY, read_capped


class Server:
    """Answers every connection with a body of ``size`` bytes, sent ``chunk`` bytes every ``pause`` s."""

    def __init__(self, size: int, chunk: int, pause: float) -> None:
        self.size, self.chunk, self.pause = size, chunk, pause
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                # Keep-alive, as registries answer: with "Connection: close" http.client detaches the socket
                # from the connection, and only the deadline's check between reads bounds the body.
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {self.size}\r\n\r\n"
                try:
                    connection.sendall(head.encode())
                    for start in range(0, self.size, self.chunk):
                        connection.sendall(b"x" * min(self.chunk, self.size - start))
                        time.sleep(self.pause)
                except OSError:
                    pass  # the client stopped reading, as it should

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def serve() -> Iterator[type[Server]]:
    servers: list[Server] = []

    def make(size: int, chunk: int, pause: float) -> Server:
        servers.append(Server(size, chunk, pause))
        return servers[-1]

    yield make  # type: ignore[misc]
    for server in servers:
        server.close()


def read(url: str, *, timeout: float, seconds: float) -> bytes:
    with requests.get(url, stream=True, timeout=(timeout, timeout)) as response:
        return read_capped(response, f"GET {url}", timeout, Deadline(seconds), MAX_BODY)


def test_a_body_in_time_is_read_whole(serve) -> None:
    server = serve(size=200_000, chunk=50_000, pause=0.01)
    assert read(server.url, timeout=5.0, seconds=5.0) == b"x" * 200_000


def test_a_trickling_body_is_cut_off_at_the_deadline(serve) -> None:
    # Each byte comes well inside the per-read timeout: only the deadline stops the read.
    server = serve(size=1000, chunk=1, pause=0.05)
    started = time.monotonic()
    with pytest.raises((TransportError, urllib3.exceptions.ReadTimeoutError), match=r"out of time|timed out"):
        read(server.url, timeout=5.0, seconds=0.5)
    assert time.monotonic() - started < 1.5


def test_a_stalled_body_waits_for_the_deadline_not_the_read_timeout(serve) -> None:
    # The socket's timeout is shortened to what is left of the deadline, below the request's own.
    server = serve(size=1000, chunk=10, pause=10.0)
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        read(server.url, timeout=5.0, seconds=0.5)
    assert time.monotonic() - started < 1.5


def test_a_body_over_the_cap_is_refused(serve) -> None:
    server = serve(size=MAX_BODY + 1, chunk=1024 * 1024, pause=0.0)
    with pytest.raises(TransportError, match="larger than"):
        read(server.url, timeout=5.0, seconds=10.0)
