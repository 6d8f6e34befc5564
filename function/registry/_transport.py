"""HTTP to container registries: scheme, bearer-token exchange, and sending through the rate limit and
retries (`_send`, `_throttle`, `_tokens`).

Internal to `function.registry`, which turns replies into manifests and errors; this layer knows HTTP only.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping

from function.deadline import Clock, Deadline, Sleep
from function.registry._http import MAX_REQUEST_SECONDS, Reply, TransportError, is_google_host, scheme_for
from function.registry._send import MAX_BODY, Sender
from function.registry._throttle import HostLimits, RetryPolicy
from function.registry._tokens import (
    GoogleTokens,
    TokenCache,
    check_realm,
    parse_bearer_challenge,
    read_token,
)


class Transport:
    """Sends requests to registries, with the tokens they ask for; safe to share between threads."""

    def __init__(
        self,
        *,
        timeout: float,
        retry: RetryPolicy,
        rate_per_host: float,
        google_tokens: GoogleTokens,
        sleep: Sleep,
        clock: Clock = time.monotonic,
        realm_hosts: frozenset[str] = frozenset(),
        request_seconds: float = MAX_REQUEST_SECONDS,
    ) -> None:
        # Where a bearer challenge may send us for a token, besides the registry's own host.
        self._realm_hosts = realm_hosts
        self._google_tokens = google_tokens
        self._tokens = TokenCache(clock)
        self._sender = Sender(
            timeout=timeout,
            request_seconds=request_seconds,
            retry=retry,
            limits=HostLimits(rate_per_host, retry, clock=clock, sleep=sleep),
            sleep=sleep,
            clock=clock,
        )

    @property
    def calls(self) -> int:
        return self._sender.calls

    def close(self) -> None:
        self._sender.close()

    def request(
        self,
        method: str,
        host: str,
        path: str,
        *,
        headers: Mapping[str, str],
        scope: str,
        deadline: Deadline | None = None,
        max_body: int = MAX_BODY,
    ) -> Reply:
        """Send with retries; on a bearer challenge, fetch a token for `scope` once and send again.

        Returns the final reply whatever its status (retryable statuses only once retries are spent);
        raises TransportError where no reply came at all, or where ``deadline`` passed first,
        or where the body is longer than ``max_body``.
        """
        url = f"{scheme_for(host)}://{host}{path}"
        send = self._sender.send
        reply = send(
            method, url, {**headers, **self._authorization(host, scope, deadline)}, deadline, max_body=max_body
        )
        if reply.status != 401:
            return reply
        challenge = parse_bearer_challenge(reply.headers.get("WWW-Authenticate"))
        if challenge is None:
            return reply
        token = self._fetch_token(host, scope, challenge, deadline)
        retried = send(method, url, {**headers, "Authorization": f"Bearer {token}"}, deadline, max_body=max_body)
        return dataclasses.replace(retried, attempts=reply.attempts + retried.attempts)

    def _authorization(self, host: str, scope: str, deadline: Deadline | None) -> dict[str, str]:
        cached = self._tokens.get(host, scope)
        if cached is not None:
            return {"Authorization": f"Bearer {cached}"}
        google_token = self._google_tokens.token(deadline) if is_google_host(host) else None
        return {"Authorization": f"Bearer {google_token}"} if google_token else {}

    def _fetch_token(self, host: str, scope: str, challenge: Mapping[str, str], deadline: Deadline | None) -> str:
        """Anonymous token exchange with the realm the registry named, if it is one we may contact."""
        realm = challenge.get("realm", "")
        check_realm(host, realm, self._realm_hosts)
        params = {key: challenge[key] for key in ("service", "scope") if challenge.get(key)}
        reply = self._sender.send("GET", realm, {}, deadline, params)
        if reply.status != 200:
            raise TransportError(f"token service {realm} answered HTTP {reply.status} for {params}")
        value, lifetime = read_token(reply.body, realm)
        self._tokens.put(host, scope, value, lifetime)
        return value
