"""A real Pub/Sub emulator for tests: the Google Cloud SDK's cloud-pubsub-emulator (Java) on loopback.

`PubSubEmulator` starts and stops one emulator and creates topics, push subscriptions and messages on
it through google-cloud-pubsub over an insecure gRPC channel (the emulator is anonymous). Load as a
pytest plugin (`-p tests.support.pubsub`) for the session-scoped `pubsub` fixture.

What the emulator pushes, as observed with emulator 0.8.20: a POST with `Content-Type: application/json`
and the body

    {"subscription": "projects/<p>/subscriptions/<s>",
     "message": {"data": "<base64>", "attributes": {...}, "messageId": "1", "message_id": "1",
                 "publishTime": "<RFC 3339>", "publish_time": "<RFC 3339>"}}

An answer of 102, 200, 201, 202 or 204 acknowledges; anything else, a refused connection, or no answer
within the ack deadline makes it push the message again. Without a retry policy it redelivers about
once a second, steadily; a retry policy, even with tiny backoffs, slows it to one push every 3 s or more.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import pytest
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from tests.support.net import free_port

EMULATOR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
PROJECT = "test-project"
STARTUP_TIMEOUT = 60.0
RPC_TIMEOUT = 30.0
_START_ATTEMPTS = 3


class PubSubEmulator:
    """One cloud-pubsub-emulator on 127.0.0.1:<free port>, in its own process group."""

    def __init__(self, launcher: Path = EMULATOR, project: str = PROJECT) -> None:
        self.launcher = launcher
        self.project = project
        self.port = 0
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._publisher: Any = None
        self._subscriber: Any = None

    @property
    def host(self) -> str:
        """What `PUBSUB_EMULATOR_HOST` must hold (host:port, no scheme)."""
        return f"127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for a process that should talk to this emulator."""
        return {"PUBSUB_EMULATOR_HOST": self.host, "PUBSUB_PROJECT_ID": self.project}

    def __enter__(self) -> PubSubEmulator:
        self._workdir = tempfile.TemporaryDirectory(prefix="pubsub-emulator-")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def _start(self) -> None:
        assert self._workdir is not None
        workdir = Path(self._workdir.name)
        log_path = workdir / "emulator.log"
        for _ in range(_START_ATTEMPTS):
            # The free port may be taken between the probe and the emulator's bind: then start again.
            self.port = free_port()
            with log_path.open("wb") as log:
                # Its own session, so that stopping it also ends the java child of the launcher script.
                self._process = subprocess.Popen(
                    [str(self.launcher), "--host=127.0.0.1", f"--port={self.port}", f"--dir={workdir / 'data'}"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=workdir,
                    start_new_session=True,
                )
            if self._wait_ready(log_path):
                channel = grpc.insecure_channel(self.host)
                self._publisher = PublisherClient(transport=PublisherGrpcTransport(channel=channel))
                self._subscriber = SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))
                return
        raise RuntimeError(f"Pub/Sub emulator exited at start: {_tail(log_path)}")

    def _wait_ready(self, log_path: Path) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                _stop_group(self._process)
                self._process = None
                return False
            try:
                # gRPC and HTTP share the port; GET / answers "Ok" once both are served.
                with urllib.request.urlopen(f"http://{self.host}/", timeout=1) as response:
                    if response.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Pub/Sub emulator not ready after {STARTUP_TIMEOUT}s: {_tail(log_path)}")

    def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.stop()
            self._publisher = None
        if self._subscriber is not None:
            self._subscriber.close()
            self._subscriber = None
        if self._process is not None:
            _stop_group(self._process)
            self._process = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def subscription_path(self, subscription: str) -> str:
        return f"projects/{self.project}/subscriptions/{subscription}"

    def create_topic(self, topic: str | None = None) -> str:
        """Creates the topic (a unique name when none is given); returns its full path."""
        path = self.topic_path(topic or f"topic-{uuid.uuid4().hex[:12]}")
        self._publisher.create_topic(name=path, timeout=RPC_TIMEOUT)
        return path

    def create_push_subscription(
        self, topic_path: str, endpoint: str, *, subscription: str | None = None, ack_deadline_seconds: int = 10
    ) -> str:
        """A push subscription on ``topic_path`` posting to ``endpoint``; returns its full path.

        No retry policy on purpose: the emulator then redelivers a refused message after about 1 s.
        ``ack_deadline_seconds`` is also how long a push may go unanswered before it is sent again.
        """
        path = self.subscription_path(subscription or f"sub-{uuid.uuid4().hex[:12]}")
        self._subscriber.create_subscription(
            request={
                "name": path,
                "topic": topic_path,
                "push_config": {"push_endpoint": endpoint},
                "ack_deadline_seconds": ack_deadline_seconds,
            },
            timeout=RPC_TIMEOUT,
        )
        return path

    def delete_subscription(self, subscription_path: str) -> None:
        """Stops the pushes of a subscription, e.g. before its endpoint goes away."""
        self._subscriber.delete_subscription(subscription=subscription_path, timeout=RPC_TIMEOUT)

    def publish(self, topic_path: str, data: bytes, **attributes: str) -> str:
        """Publishes one message and waits for the emulator to take it; returns the message id."""
        message_id: str = self._publisher.publish(topic_path, data, **attributes).result(timeout=RPC_TIMEOUT)
        return message_id


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        process.wait()
        return
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _tail(log_path: Path) -> str:
    try:
        return log_path.read_text(errors="replace")[-2000:] or "(no output)"
    except OSError:
        return "(no log)"


def missing() -> str | None:
    """Why the emulator cannot run here, or None when it can."""
    if not os.access(EMULATOR, os.X_OK):
        return f"Pub/Sub emulator not found at {EMULATOR} (apt-get install google-cloud-cli-pubsub-emulator)"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "the Pub/Sub emulator needs Java: no java on PATH and no JAVA_HOME (apt-get install default-jre)"
    return None


@pytest.fixture(scope="session")
def pubsub() -> Iterator[PubSubEmulator]:
    """One Pub/Sub emulator for the whole session; skips when it or Java is absent."""
    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    with PubSubEmulator() as emulator:
        yield emulator
