"""The settings of the functions and the CLI, read once from the environment (the contract's configuration
table): every value is checked at start, and a bad one is a ``SettingError`` naming its variable (the
CLI exits 2, a function fails to start) rather than a surprise in the middle of a decision.

Light on purpose: the CLI reads it before anything talks to Google Cloud.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from function import deadline
from function.errors import Permanent
from function.reference import InvalidReference, is_loopback, normalize_prefix

INDEX_URI_VARIABLE = "AUDITOR_INDEX_URI"
FROZEN_PREFIXES_VARIABLE = "AUDITOR_FROZEN_PREFIXES"
DEADLINE_VARIABLE = "AUDITOR_DEADLINE_SECONDS"
PENDING_GRACE_VARIABLE = "AUDITOR_PENDING_GRACE_SECONDS"
SWEEP_MAX_SECONDS_VARIABLE = "AUDITOR_SWEEP_MAX_SECONDS"
OIDC_AUDIENCE_VARIABLE = "AUDITOR_OIDC_AUDIENCE"
OIDC_INVOKERS_VARIABLE = "AUDITOR_OIDC_INVOKERS"
OIDC_CERTS_VARIABLE = "AUDITOR_OIDC_CERTS_URL"

DEFAULT_MANIFESTS = "https://github.com/kubernetes/k8s.io/archive/{sha}.tar.gz"
DEFAULT_SUBDIR = "registry.k8s.io"
DEFAULT_BRANCH = "main"
DEFAULT_HEAD_URL = "https://api.github.com/repos/kubernetes/k8s.io/commits/{branch}"
DEFAULT_COMPARE_URL = "https://api.github.com/repos/kubernetes/k8s.io/compare/{base}...{head}"
DEFAULT_REFRESH_SECONDS = 60.0
DEFAULT_GRACE_SECONDS = 1800.0
DEFAULT_PARENT_WAIT_SECONDS = 600.0
# Under the sweep function's 3600 s timeout, with room for the summary.
DEFAULT_SWEEP_MAX_SECONDS = 3000.0
DEFAULT_SIGNERS = "krel-trust@k8s-releng-prod.iam.gserviceaccount.com=https://accounts.google.com"
DEFAULT_SIGNING_REGISTRY = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images"
# Where Google publishes the keys of its ID tokens, in the {key id: PEM certificate} form google-auth reads.
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
_EMAIL = re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+")


class SettingError(Permanent):
    """``variable`` holds a value the auditor cannot run with; the message says what to fix."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        self.variable = variable


@dataclass(frozen=True, slots=True)
class Settings:
    index_uri: str | None = None
    """Unset is fine for the CLI (``--index``); the functions ask ``required_index_uri``."""
    manifests: str = DEFAULT_MANIFESTS
    manifests_subdir: str = DEFAULT_SUBDIR
    """Empty: the tarball holds ``images/`` and ``manifests/`` at its top."""
    webhook_secret: str | None = None
    sync_queue: str | None = None
    branch: str = DEFAULT_BRANCH
    head_url: str = DEFAULT_HEAD_URL
    compare_url: str = DEFAULT_COMPARE_URL
    github_token: str | None = None
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS
    pending_grace_seconds: float = DEFAULT_GRACE_SECONDS
    frozen_prefixes: tuple[str, ...] = ()
    """Each spelled as event paths are (``normalize_prefix``)."""
    deadline_seconds: float = deadline.DEFAULT_SECONDS
    parent_wait_seconds: float = DEFAULT_PARENT_WAIT_SECONDS
    signers: str = DEFAULT_SIGNERS
    """``IDENTITY=ISSUER`` pairs, comma-separated, as written."""
    trusted_root: str | None = None
    signing_registry: str = DEFAULT_SIGNING_REGISTRY
    """Empty: no signature sweep."""
    signed_since: dt.datetime | None = None
    sweep_max_seconds: float = DEFAULT_SWEEP_MAX_SECONDS
    oidc: Oidc | None = None
    """Unset: ``sync_index`` refuses every resync and queued rebuild (only GitHub's signed pushes get in)."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Every setting of ``environ``, each checked; ``SettingError`` for the first bad one."""
        read = _Reader(environ)
        return cls(
            index_uri=read.optional(INDEX_URI_VARIABLE, strip=False),
            manifests=read.text("AUDITOR_MANIFESTS", DEFAULT_MANIFESTS),
            manifests_subdir=environ.get("AUDITOR_MANIFESTS_SUBDIR", DEFAULT_SUBDIR),
            # Not stripped: the secret is HMAC key bytes, spaces included.
            webhook_secret=read.optional("AUDITOR_WEBHOOK_SECRET", strip=False),
            sync_queue=read.optional("AUDITOR_SYNC_QUEUE"),
            branch=read.text("AUDITOR_BRANCH", DEFAULT_BRANCH),
            head_url=read.text("AUDITOR_HEAD_URL", DEFAULT_HEAD_URL),
            compare_url=read.text("AUDITOR_COMPARE_URL", DEFAULT_COMPARE_URL),
            github_token=read.optional("AUDITOR_GITHUB_TOKEN"),
            refresh_seconds=read.seconds("AUDITOR_REFRESH_SECONDS", DEFAULT_REFRESH_SECONDS),
            pending_grace_seconds=read.seconds(PENDING_GRACE_VARIABLE, DEFAULT_GRACE_SECONDS),
            frozen_prefixes=read.prefixes(FROZEN_PREFIXES_VARIABLE),
            deadline_seconds=read.seconds(DEADLINE_VARIABLE, deadline.DEFAULT_SECONDS),
            parent_wait_seconds=read.seconds("AUDITOR_PARENT_WAIT_SECONDS", DEFAULT_PARENT_WAIT_SECONDS),
            signers=read.text("AUDITOR_SIGNERS", DEFAULT_SIGNERS),
            trusted_root=read.optional("AUDITOR_TRUSTED_ROOT"),
            signing_registry=read.prefix("AUDITOR_SIGNING_REGISTRY", DEFAULT_SIGNING_REGISTRY),
            signed_since=read.time("AUDITOR_SIGNED_SINCE"),
            sweep_max_seconds=read.seconds(SWEEP_MAX_SECONDS_VARIABLE, DEFAULT_SWEEP_MAX_SECONDS),
            oidc=read.oidc(),
        )

    def required_index_uri(self) -> str:
        """``AUDITOR_INDEX_URI``, which every function needs."""
        if not self.index_uri:
            raise SettingError(INDEX_URI_VARIABLE, _unset(INDEX_URI_VARIABLE))
        return self.index_uri


@dataclass(frozen=True, slots=True)
class Oidc:
    """Who may ask ``sync_index`` for a resync or a queued rebuild: a Google-signed ID token for exactly
    ``audience`` (the function's URL) of a verified ``invokers`` email."""

    audience: str
    invokers: frozenset[str]
    certs_url: str = GOOGLE_CERTS_URL
    """Google's; only a loopback server of tests may stand in for it."""


class _Reader:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def text(self, name: str, default: str) -> str:
        """A value that may be left unset for ``default``, but not set empty."""
        value = self.environ.get(name, default)
        if not value:
            raise SettingError(name, _unset(name))
        return value

    def optional(self, name: str, *, strip: bool = True) -> str | None:
        value = self.environ.get(name, "")
        return (value.strip() if strip else value) or None

    def seconds(self, name: str, default: float) -> float:
        """A positive number of seconds, or ``default`` when unset."""
        raw = self.environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not value > 0 or value == float("inf"):
            raise SettingError(
                name, f"{name}={raw!r} is not a positive number of seconds: see the README's configuration table"
            )
        return value

    def prefixes(self, name: str) -> tuple[str, ...]:
        """Comma-separated registry path prefixes, each spelled as event paths are."""
        parts = (part.strip() for part in self.environ.get(name, "").split(","))
        return tuple(_prefix(name, part) for part in parts if part)

    def prefix(self, name: str, default: str) -> str:
        """One registry path prefix, spelled as event paths are; empty when set empty."""
        value = self.environ.get(name, default).strip()
        return _prefix(name, value) if value else ""

    def oidc(self) -> Oidc | None:
        """Both OIDC settings or neither: one alone is a half-done set-up that would refuse every resync."""
        audience = self.optional(OIDC_AUDIENCE_VARIABLE)
        invokers = tuple(part.strip() for part in self.environ.get(OIDC_INVOKERS_VARIABLE, "").split(","))
        invokers = tuple(part for part in invokers if part)
        certs_url = self.optional(OIDC_CERTS_VARIABLE)
        if audience is None and not invokers:
            return None
        if audience is None or not (audience.startswith("https://") or _loopback_http(audience)):
            raise SettingError(
                OIDC_AUDIENCE_VARIABLE,
                f"{OIDC_AUDIENCE_VARIABLE}={audience or ''!r} is not the function's https URL, which its ID tokens "
                "must be addressed to (set it with AUDITOR_OIDC_INVOKERS, or neither)",
            )
        bad = [invoker for invoker in invokers if not _EMAIL.fullmatch(invoker)]
        if not invokers or bad:
            raise SettingError(
                OIDC_INVOKERS_VARIABLE,
                f"{OIDC_INVOKERS_VARIABLE}={self.environ.get(OIDC_INVOKERS_VARIABLE, '')!r} is not a comma-separated "
                "list of service-account emails (set it with AUDITOR_OIDC_AUDIENCE, or neither)",
            )
        if certs_url is not None and not _loopback_http(certs_url):
            # Whoever serves the keys decides who gets in: only a test's loopback server may replace Google.
            raise SettingError(OIDC_CERTS_VARIABLE, f"{OIDC_CERTS_VARIABLE}={certs_url!r} is not a loopback URL")
        # Google writes account emails in lower case; an operator may not.
        return Oidc(audience, frozenset(i.lower() for i in invokers), certs_url or GOOGLE_CERTS_URL)

    def time(self, name: str) -> dt.datetime | None:
        """An RFC 3339 time with its offset, or None when unset."""
        raw = self.environ.get(name, "").strip()
        if not raw:
            return None
        try:
            value = dt.datetime.fromisoformat(raw)
        except ValueError:
            value = None
        if value is None or value.tzinfo is None:
            raise SettingError(name, f"{name}={raw!r} is not an RFC 3339 time with an offset, as 2022-06-01T00:00:00Z")
        return value


def _prefix(name: str, prefix: str) -> str:
    try:
        return normalize_prefix(prefix)
    except InvalidReference as error:
        raise SettingError(name, f"{name}: {prefix!r} is not a registry path prefix ({error})") from None


def _loopback_http(url: str) -> bool:
    return url.startswith("http://") and is_loopback(url.removeprefix("http://").split("/", 1)[0])


def _unset(name: str) -> str:
    return f"{name} is not set: see the configuration table in the README"
