"""Rebuilds queued outside the webhook's request, through a Pub/Sub topic (``AUDITOR_SYNC_QUEUE``).

GitHub gives a webhook 10 s; a rebuild takes longer. So ``sync_index`` publishes a rebuild request on the
topic and answers 202, and the topic's push subscription delivers the request back to ``sync_index``,
which rebuilds inside that delivery (Pub/Sub retries it on a 5xx, with its own backoff and dead-letter
topic). The request itself is unsigned: the push subscription authenticates each delivery with a
Google-signed ID token of its own service account, which ``sync_index`` verifies
(``function.services.oidc``), so the webhook secret stays GitHub's alone.

Published through the REST API with google-auth's ``AuthorizedSession`` rather than the gRPC client
library, which would add a heavy dependency to every cold start for one call per push.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import requests
from google.auth import exceptions as auth_exceptions

from function.deadline import Clock, Deadline
from function.errors import Retryable
from function.github import webhook
from function.index.pending import commit_time

PUBSUB_API = "https://pubsub.googleapis.com"
PUBSUB_SCOPE = "https://www.googleapis.com/auth/pubsub"
TOPIC = re.compile(r"projects/[a-z][a-z0-9.:-]{4,62}/topics/[A-Za-z][A-Za-z0-9._~+%-]{2,254}")
PUBLISH_ATTEMPTS = 3
# GitHub waits 10 s for the webhook's answer; every attempt, the credentials' refresh included, shares
# this one deadline, so a Pub/Sub that does not answer turns into a 503 (and GitHub's redelivery or the
# next resync) rather than a request that outlives the webhook.
DEADLINE_SECONDS = 8.0


class QueueError(Retryable):
    """The rebuild request could not be queued (a fault: GitHub's redelivery or the next resync retries)."""


class BadDelivery(ValueError):
    """A Pub/Sub delivery that is not a rebuild request."""


@dataclass(frozen=True, slots=True)
class RebuildRequest:
    commit: str
    committed_at: str | None
    reason: str

    def data(self) -> bytes:
        return orjson.dumps({"commit": self.commit, "committed_at": self.committed_at, "reason": self.reason})

    @classmethod
    def from_data(cls, data: bytes) -> RebuildRequest:
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise BadDelivery("the rebuild request is not JSON") from None
        if not isinstance(document, Mapping):
            raise BadDelivery("the rebuild request is not a JSON object")
        commit, committed_at, reason = document.get("commit"), document.get("committed_at"), document.get("reason")
        if not webhook.is_commit_sha(commit):
            raise BadDelivery("the rebuild request names no commit SHA (40 lowercase hex digits)")
        if committed_at is not None:
            try:
                commit_time(committed_at)
            except (TypeError, ValueError, AttributeError):
                raise BadDelivery(f"the rebuild request's committed_at is not ISO 8601: {committed_at!r}") from None
        return cls(commit, committed_at, reason if isinstance(reason, str) else "unspecified")


def is_envelope(document: Any) -> bool:
    """Whether a request body is a Pub/Sub push envelope rather than a webhook or a resync request."""
    return isinstance(document, Mapping) and isinstance(document.get("message"), Mapping) and "subscription" in document


def delivered(document: Mapping[str, Any]) -> tuple[RebuildRequest, str | None]:
    """The rebuild request in a push envelope, and its message id; BadDelivery when it is not one."""
    message = document["message"]
    try:
        data = base64.b64decode(message.get("data") or "", validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise BadDelivery("the message data is not base64") from None
    message_id = message.get("messageId")
    return RebuildRequest.from_data(data), message_id if isinstance(message_id, str) else None


class SyncQueue:
    """Publishes rebuild requests on one topic (the emulator where ``PUBSUB_EMULATOR_HOST`` is set)."""

    def __init__(
        self,
        topic: str,
        *,
        session: requests.Session | None = None,
        deadline_seconds: float = DEADLINE_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        if not TOPIC.fullmatch(topic):
            raise ValueError(f"AUDITOR_SYNC_QUEUE {topic!r} is not a Pub/Sub topic: write projects/<p>/topics/<t>")
        self.topic = topic
        self.deadline_seconds = deadline_seconds
        self._clock = clock
        self._session = session
        emulator = os.environ.get("PUBSUB_EMULATOR_HOST")
        self._endpoint = f"http://{emulator}" if emulator else PUBSUB_API

    def publish(self, request: RebuildRequest) -> str:
        """Queue ``request``; returns Pub/Sub's message id."""
        body = {"messages": [{"data": base64.b64encode(request.data()).decode()}]}
        url = f"{self._endpoint}/v1/{self.topic}:publish"
        deadline = Deadline(self.deadline_seconds, self._clock)
        problem = ""
        for _ in range(PUBLISH_ATTEMPTS):
            if deadline.expired:
                problem = f"no answer within {self.deadline_seconds:g} s" + (f", last {problem}" if problem else "")
                break
            try:
                response = self._session_or_new(deadline).post(url, json=body, timeout=deadline.remaining())
                if response.status_code == 200:
                    ids = response.json().get("messageIds") or [""]
                    return str(ids[0])
            except (requests.RequestException, OSError, ValueError, auth_exceptions.GoogleAuthError) as error:
                problem = f"{type(error).__name__}: {error}"
                continue
            problem = f"answered {response.status_code}: {response.text[:200]}"
            if response.status_code < 500 and response.status_code != 429:
                break  # a refusal (permissions, a missing topic) does not heal by asking again
        raise QueueError(
            f"publishing the rebuild of {request.commit} on {self.topic} failed ({problem}); check that the topic "
            "exists and that the sync's service account may publish to it"
        )

    def _session_or_new(self, deadline: Deadline) -> requests.Session:
        if self._session is None:
            if self._endpoint == PUBSUB_API:
                import google.auth
                from google.auth.transport.requests import AuthorizedSession

                credentials, _ = google.auth.default(scopes=[PUBSUB_SCOPE])
                # The token refresh is a request of its own; it must not outlive the publish either.
                self._session = AuthorizedSession(  # type: ignore[no-untyped-call]
                    credentials, refresh_timeout=deadline.remaining()
                )
            else:
                self._session = requests.Session()  # the emulator is anonymous
        return self._session
