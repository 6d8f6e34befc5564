"""Who may ask ``sync_index`` for anything but a GitHub push: callers with a Google-signed OIDC ID token.

Cloud Scheduler's resync and the sync queue's Pub/Sub pushes send ``Authorization: Bearer <ID token>``
minted for their service accounts (https://cloud.google.com/scheduler/docs/http-target-auth,
https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions). The token is accepted when its
signature verifies with one of Google's published keys, it is unexpired, its ``iss`` is Google's, its
``aud`` is exactly this function's URL, and its verified ``email`` is one of the allowed invokers. The
signature, ``exp``/``iat`` and ``aud`` checks are google-auth's ``id_token.verify_token``: a JWT verifier
written here would have to get every one of them right again.

Google's keys are fetched for each verification: a resync an hour and a rebuild per merged push are far
too few for a cache to pay for itself, and there is then no stale key set to rotate out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from function.settings import OIDC_AUDIENCE_VARIABLE, OIDC_INVOKERS_VARIABLE, Oidc

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
CERTS_TIMEOUT_SECONDS = 10.0
# Google's tokens and Cloud Run's clock are both kept to NTP; this only absorbs the edges.
CLOCK_SKEW_SECONDS = 10
UNCONFIGURED = (
    f"{OIDC_AUDIENCE_VARIABLE} and {OIDC_INVOKERS_VARIABLE} are not set: every resync and queued rebuild is "
    "refused with 401 (only GitHub's signed pushes are served)"
)


class Unauthenticated(Exception):
    """No acceptable token; the message, for the log only, says why."""


class KeysUnavailable(Exception):
    """Google's keys could not be fetched: the token could be neither accepted nor refused."""


def verify(oidc: Oidc | None, authorization: str | None) -> str:
    """The invoker's email when ``authorization`` is ``Bearer <token>`` of an allowed caller; with no
    ``oidc`` settings, nobody is one."""
    if oidc is None:
        raise Unauthenticated(UNCONFIGURED)
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("no 'Authorization: Bearer' ID token")
    claims = _verified_claims(oidc, token.strip())
    issuer, email = claims.get("iss"), claims.get("email")
    if issuer not in GOOGLE_ISSUERS:
        raise Unauthenticated(f"the token's issuer {issuer!r} is not Google's")
    if claims.get("email_verified") is not True:
        raise Unauthenticated(f"the token's email {email!r} is not verified")
    if not isinstance(email, str) or email.lower() not in oidc.invokers:
        raise Unauthenticated(f"{email!r} is not in AUDITOR_OIDC_INVOKERS")
    return email


def _verified_claims(oidc: Oidc, token: str) -> Mapping[str, Any]:
    # Loaded with the first token rather than with the function: a GitHub push never needs them.
    from google.auth import exceptions
    from google.oauth2 import id_token

    try:
        return id_token.verify_token(
            token,
            _keys_request(),
            audience=oidc.audience,
            certs_url=oidc.certs_url,
            clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
        )
    except exceptions.TransportError as error:
        raise KeysUnavailable(f"fetching {oidc.certs_url} failed: {error}") from None
    except (ValueError, exceptions.GoogleAuthError) as error:
        # Bad signature, unknown key, expired, wrong audience, not a JWT at all: google-auth's message says which.
        raise Unauthenticated(f"the token does not verify: {error}") from None


def _keys_request() -> Any:
    from google.auth.transport import requests as transport

    class Request(transport.Request):
        """google-auth's transport with a timeout of its own: a key server that hangs must not hold the sync."""

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            kwargs["timeout"] = CERTS_TIMEOUT_SECONDS
            return super().__call__(*args, **kwargs)  # type: ignore[no-untyped-call]

    return Request()
