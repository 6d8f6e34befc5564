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
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.cloud.pubsub_v1 import PublisherClient, SubscriberClient
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from tests.support.process import LoopbackProcess

EMULATOR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
PROJECT = "test-project"
RPC_TIMEOUT = 30.0


class PubSubEmulator(LoopbackProcess):
    """One cloud-pubsub-emulator on 127.0.0.1:<free port>; `host` is what `PUBSUB_EMULATOR_HOST` must hold.

    gRPC and HTTP share the port; GET / answers "Ok" once both are served.
    """

    name = "pubsub-emulator"
    startup_timeout = 60.0
    # Its own session, so that stopping it also ends the java child of the launcher script.
    own_group = True

    def __init__(self, launcher: Path = EMULATOR, project: str = PROJECT) -> None:
        super().__init__()
        self.launcher = launcher
        self.project = project
        self._publisher: Any = None
        self._subscriber: Any = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for a process that should talk to this emulator."""
        return {"PUBSUB_EMULATOR_HOST": self.host, "PUBSUB_PROJECT_ID": self.project}

    def command(self) -> list[str]:
        return [str(self.launcher), "--host=127.0.0.1", f"--port={self.port}", f"--dir={self.workdir / 'data'}"]

    def start(self) -> None:
        super().start()
        channel = grpc.insecure_channel(self.host)
        self._publisher = PublisherClient(transport=PublisherGrpcTransport(channel=channel))
        self._subscriber = SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))

    def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.stop()
            self._publisher = None
        if self._subscriber is not None:
            self._subscriber.close()
            self._subscriber = None
        super().stop()

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
