"""RegistryClient against Debian's docker-registry, through a recording, fault-injecting proxy.

The `registry` and `registry_proxy` fixtures come from the plugins tests.support.registry and
tests.support.proxy (listed in tests/conftest.py's pytest_plugins).
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import google.auth.credentials
import google.auth.exceptions
import pytest

from function.deadline import Deadline
from function.reference import InvalidReference, is_loopback
from function.registry import content
from function.registry._http import TransportError, is_google_host, scheme_for
from function.registry._throttle import TokenBucket, parse_retry_after
from function.registry._tokens import GoogleTokens, check_realm, parse_bearer_challenge
from function.registry.client import (
    DigestMismatch,
    HostNotAllowed,
    ManifestNotFound,
    RegistryClient,
    RegistryUnavailable,
    UnreadableManifest,
)
from tests.support.clock import FakeClock
from tests.support.proxy import RegistryProxy
from tests.support.registry import (
    RegistryServer,
    delete_manifest,
    fetch_manifest,
    push_image,
    push_index,
    push_manifest,
    push_referrer,
    push_signature,
)

pytestmark = pytest.mark.registry


class Sleeps:
    """A `sleep` that records instead of waiting, so retries cost no time."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def never_credentials():
    raise AssertionError("Google credentials must not be created for a loopback registry")


def make_client(proxy: RegistryProxy, sleeps: Sleeps | None = None, **options) -> RegistryClient:
    return RegistryClient(
        [proxy.host], credentials=never_credentials, sleep=Sleeps() if sleeps is None else sleeps, **options
    )


def new_repo() -> str:
    return f"test/{uuid.uuid4().hex[:12]}/image"


@pytest.fixture
def repo() -> str:
    return new_repo()


# --- content over the wire ---


@pytest.mark.parametrize("oci", [False, True], ids=["docker-list", "oci-index"])
def test_index_by_tag_lists_its_children(registry: RegistryServer, registry_proxy: RegistryProxy, repo, oci):
    amd64 = push_image(registry.host, repo, oci=oci)
    arm64 = push_image(registry.host, repo, platform=("linux", "arm64"), oci=oci)
    index = push_index(registry.host, repo, [amd64, arm64], tag="v1", oci=oci)
    with make_client(registry_proxy) as client:
        manifest = client.get_manifest(registry_proxy.host, repo, "v1")
    assert manifest.digest == index
    assert manifest.media_type == (content.OCI_INDEX if oci else content.DOCKER_MANIFEST_LIST)
    assert manifest.is_index
    assert manifest.children == (amd64, arm64)


@pytest.mark.parametrize("oci", [False, True], ids=["docker", "oci"])
def test_single_manifest_by_digest(registry: RegistryServer, registry_proxy: RegistryProxy, repo, oci):
    digest = push_image(registry.host, repo, oci=oci)
    with make_client(registry_proxy) as client:
        manifest = client.get_manifest(registry_proxy.host, repo, digest)
    assert manifest.digest == digest
    assert manifest.media_type == (content.OCI_MANIFEST if oci else content.DOCKER_MANIFEST)
    assert (manifest.children, manifest.subject, manifest.is_index) == ((), None, False)
    assert registry_proxy.registry_requests()[0].path == f"/v2/{repo}/manifests/{digest}"


def test_referrer_names_its_subject(registry: RegistryServer, registry_proxy: RegistryProxy, repo):
    child = push_image(registry.host, repo, oci=True)
    index = push_index(registry.host, repo, [child])
    referrer = push_referrer(registry.host, repo, index, artifact_type="application/spdx+json")
    with make_client(registry_proxy) as client:
        manifest = client.get_manifest(registry_proxy.host, repo, referrer)
    assert (manifest.subject, manifest.facts.artifact) == (index, True)


@pytest.mark.parametrize("kind", ["sig", "att", "sbom"])
def test_cosign_style_tag_resolves(registry: RegistryServer, registry_proxy: RegistryProxy, repo, kind):
    image = push_image(registry.host, repo)
    signature = push_signature(registry.host, repo, image, kind=kind)
    with make_client(registry_proxy) as client:
        manifest = client.get_manifest(registry_proxy.host, repo, image.replace(":", "-") + f".{kind}")
    assert manifest.digest == signature
    assert manifest.media_type == content.OCI_MANIFEST


# --- resolve_tag ---


@pytest.mark.parametrize("oci", [False, True], ids=["docker-list", "oci-index"])
def test_resolve_tag_is_one_head_and_names_the_index_not_a_child(
    registry: RegistryServer, registry_proxy: RegistryProxy, repo, oci
):
    index = push_index(registry.host, repo, [push_image(registry.host, repo, oci=oci)], tag="v2", oci=oci)
    with make_client(registry_proxy) as client:
        assert client.resolve_tag(registry_proxy.host, repo, "v2") == index
        assert client.calls == 1
    assert [(r.method, r.path) for r in registry_proxy.requests] == [("HEAD", f"/v2/{repo}/manifests/v2")]


def test_resolve_unknown_tag_is_not_found(registry_proxy: RegistryProxy, repo):
    with make_client(registry_proxy) as client, pytest.raises(ManifestNotFound, match=r":nope: not found"):
        client.resolve_tag(registry_proxy.host, repo, "nope")


# --- definitive answers and faults ---


def test_unknown_manifest_is_not_found_after_one_request(registry: RegistryServer, registry_proxy, repo):
    push_image(registry.host, repo, tag="exists")
    with make_client(registry_proxy) as client:
        with pytest.raises(ManifestNotFound, match="MANIFEST_UNKNOWN"):
            client.get_manifest(registry_proxy.host, repo, "sha256:" + "0" * 64)
        assert client.calls == 1
    assert len(registry_proxy.requests) == 1


def test_unknown_repository_is_not_found(registry_proxy: RegistryProxy):
    with make_client(registry_proxy) as client, pytest.raises(ManifestNotFound):
        client.get_manifest(registry_proxy.host, new_repo(), "latest")


def test_deleted_manifest_is_not_found(registry: RegistryServer, registry_proxy: RegistryProxy, repo):
    digest = push_image(registry.host, repo)
    delete_manifest(registry.host, repo, digest)
    with make_client(registry_proxy) as client, pytest.raises(ManifestNotFound):
        client.get_manifest(registry_proxy.host, repo, digest)


def test_throttling_is_retried_after_retry_after(registry: RegistryServer, registry_proxy: RegistryProxy, repo):
    digest = push_image(registry.host, repo)
    registry_proxy.fail_next(1, status=429, retry_after="1")
    sleeps = Sleeps()
    with make_client(registry_proxy, sleeps) as client:
        assert client.get_manifest(registry_proxy.host, repo, digest).digest == digest
        assert client.calls == 2
    assert len(registry_proxy.requests) == 2
    assert sleeps.waits == [pytest.approx(1.0)]


def test_persistent_server_error_is_unavailable_after_max_attempts(registry_proxy: RegistryProxy, repo):
    registry_proxy.fail_always(503)
    sleeps = Sleeps()
    with make_client(registry_proxy, sleeps, max_attempts=3) as client:
        with pytest.raises(RegistryUnavailable, match=r"HTTP 503.*all 3 attempts") as raised:
            client.get_manifest(registry_proxy.host, repo, "latest")
        assert client.calls == 3
    assert not isinstance(raised.value, ManifestNotFound)
    assert len(registry_proxy.requests) == 3
    assert len(sleeps.waits) == 2
    # Full jitter: each wait lies between zero and the exponential ceiling (0.5 s, then 1 s).
    assert 0 <= sleeps.waits[0] <= 0.5 and 0 <= sleeps.waits[1] <= 1.0


@pytest.mark.parametrize(
    ("status", "message"), [(401, "access refused"), (403, "access refused"), (400, "unexpected answer")]
)
def test_refusals_are_faults_and_not_retried(registry_proxy: RegistryProxy, repo, status, message):
    registry_proxy.fail_always(status)
    with make_client(registry_proxy) as client, pytest.raises(RegistryUnavailable, match=message) as raised:
        client.get_manifest(registry_proxy.host, repo, "latest")
    assert not isinstance(raised.value, ManifestNotFound)
    assert len(registry_proxy.requests) == 1


def test_total_wait_is_capped(registry_proxy: RegistryProxy, repo):
    registry_proxy.fail_next(10, status=429, retry_after="1000")
    sleeps = Sleeps()
    with make_client(registry_proxy, sleeps, max_attempts=10) as client, pytest.raises(RegistryUnavailable):
        client.get_manifest(registry_proxy.host, repo, "latest")
    # Each wait is capped at 30 s, and the client gives up rather than wait more than 60 s in all.
    assert sleeps.waits == [30.0, 30.0]
    assert len(registry_proxy.requests) == 3


def test_dropped_connections_are_retried(registry: RegistryServer, registry_proxy: RegistryProxy, repo):
    digest = push_image(registry.host, repo, tag="v1")
    registry_proxy.drop_next(2)
    with make_client(registry_proxy) as client:
        assert client.resolve_tag(registry_proxy.host, repo, "v1") == digest
        assert client.calls == 3


def test_connection_refused_is_unavailable(registry: RegistryServer, repo):
    with RegistryProxy(registry.url) as proxy:
        host = proxy.host  # closed again by the time the client calls
    sleeps = Sleeps()
    with RegistryClient([host], credentials=None, sleep=sleeps, max_attempts=2) as client:
        with pytest.raises(RegistryUnavailable, match=r"ConnectionError.*retry later"):
            client.get_manifest(host, repo, "latest")
        assert client.calls == 2


def test_tampered_body_by_digest_is_a_digest_mismatch(registry: RegistryServer, registry_proxy, repo):
    digest = push_image(registry.host, repo)
    registry_proxy.tamper(lambda body: body.replace(b"amd64", b"arm64") + b" ")
    with make_client(registry_proxy) as client, pytest.raises(DigestMismatch, match="tampered") as raised:
        client.get_manifest(registry_proxy.host, repo, digest)
    assert isinstance(raised.value, RegistryUnavailable)


def test_tampered_body_by_tag_disagrees_with_the_digest_header(registry: RegistryServer, registry_proxy, repo):
    push_image(registry.host, repo, tag="v1")
    registry_proxy.tamper(lambda body: body + b"\n")
    with make_client(registry_proxy) as client, pytest.raises(DigestMismatch):
        client.get_manifest(registry_proxy.host, repo, "v1")


def test_verified_manifest_the_model_rejects_is_invalid(registry: RegistryServer, registry_proxy, repo):
    # distribution ignores fields it does not know, so it stores a `subject` that is no descriptor.
    _, body = fetch_manifest(registry.host, repo, push_image(registry.host, repo, oci=True))
    odd = push_manifest(registry.host, repo, json.loads(body) | {"subject": "sha256:" + "a" * 64}, "odd")
    with make_client(registry_proxy) as client:
        for reference in ("odd", odd):
            with pytest.raises(UnreadableManifest, match="subject must be a descriptor object") as raised:
                client.get_manifest(registry_proxy.host, repo, reference)
            assert isinstance(raised.value.__cause__, content.InvalidManifest)


# --- authentication ---


def test_bearer_challenge_fetches_one_token_and_reuses_it(registry: RegistryServer, registry_proxy, repo):
    first = push_image(registry.host, repo, tag="a")
    second = push_image(registry.host, repo, tag="b")
    registry_proxy.require_token = True
    with make_client(registry_proxy) as client:
        assert client.get_manifest(registry_proxy.host, repo, "a").digest == first
        assert client.resolve_tag(registry_proxy.host, repo, "b") == second
        # 401, token, retry with the token; then the second call straight away with the cached token.
        assert client.calls == 4
    assert len(registry_proxy.token_requests()) == 1
    token_query = registry_proxy.token_requests()[0].query
    assert f"scope=repository%3A{repo.replace('/', '%2F')}%3Apull" in token_query
    assert "service=test-registry" in token_query
    authorizations = [r.authorization for r in registry_proxy.registry_requests()]
    assert authorizations[0] is None
    assert authorizations[1] == authorizations[2] is not None


def test_tokens_are_cached_per_repository(registry: RegistryServer, registry_proxy: RegistryProxy):
    repos = [new_repo(), new_repo()]
    for name in repos:
        push_image(registry.host, name, tag="v1")
    registry_proxy.require_token = True
    with make_client(registry_proxy) as client:
        for name in repos * 2:
            client.resolve_tag(registry_proxy.host, name, "v1")
    assert len(registry_proxy.token_requests()) == 2


def test_token_without_lifetime_is_still_used(registry: RegistryServer, registry_proxy: RegistryProxy, repo):
    push_image(registry.host, repo, tag="v1")
    registry_proxy.require_token = True
    registry_proxy.token_lifetime = None
    with make_client(registry_proxy) as client:
        client.resolve_tag(registry_proxy.host, repo, "v1")
        client.resolve_tag(registry_proxy.host, repo, "v1")
    assert len(registry_proxy.token_requests()) == 1


# --- what is never sent ---


def test_host_not_allowed_sends_nothing(registry_proxy: RegistryProxy, repo):
    with RegistryClient(["127.0.0.1:1", "gcr.io"], credentials=never_credentials, sleep=Sleeps()) as client:
        with pytest.raises(HostNotAllowed, match=rf"refusing to contact '{registry_proxy.host}'.*nothing was sent"):
            client.get_manifest(registry_proxy.host, repo, "latest")
        with pytest.raises(HostNotAllowed):
            client.resolve_tag(registry_proxy.host, repo, "latest")
        assert client.calls == 0
    assert registry_proxy.requests == []


@pytest.mark.parametrize(
    ("repository", "reference"),
    [
        ("../../v2/other", "latest"),
        ("Upper/case", "latest"),
        ("repo", "latest?x=1"),
        ("repo", "../../other"),
        ("repo", "sha256:abc"),
        ("repo", "x" * 129),
        ("a/" * 200 + "b", "latest"),
    ],
)
def test_impossible_references_send_nothing(registry_proxy: RegistryProxy, repository, reference):
    with make_client(registry_proxy) as client, pytest.raises(InvalidReference):
        client.get_manifest(registry_proxy.host, repository, reference)
    assert registry_proxy.requests == []


def test_malformed_allowed_host_is_refused():
    with pytest.raises(ValueError, match="not a registry host"):
        RegistryClient(["https://gcr.io"], credentials=None)


# --- concurrency and counting ---


def test_shared_client_counts_every_request_across_threads(registry: RegistryServer, registry_proxy, repo):
    digests = [push_image(registry.host, repo, seed=f"{repo}-{i}") for i in range(24)]
    registry_proxy.require_token = True
    with make_client(registry_proxy) as client, ThreadPoolExecutor(max_workers=8) as pool:
        manifests = list(pool.map(lambda d: client.get_manifest(registry_proxy.host, repo, d), digests))
        assert [m.digest for m in manifests] == digests
        assert client.calls == len(registry_proxy.requests)


# --- transport units ---


def test_rate_limiter_allows_a_burst_then_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(10.0, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        bucket.acquire()
    assert clock.sleeps == []
    for _ in range(20):
        bucket.acquire()
    assert clock.sleeps == [pytest.approx(0.1)] * 20
    assert clock.now == pytest.approx(1002.0)


def test_rate_limiter_refills_while_idle():
    clock = FakeClock()
    bucket = TokenBucket(5.0, burst=2, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    bucket.acquire()
    clock.now += 10.0  # idle time refills the bucket, but only up to the burst size
    for _ in range(3):
        bucket.acquire()
    assert clock.sleeps == [pytest.approx(0.2)]


def test_client_rate_limit_waits_per_host(registry: RegistryServer, registry_proxy: RegistryProxy, repo):
    push_image(registry.host, repo, tag="v1")
    sleeps = Sleeps()
    with make_client(registry_proxy, sleeps, rate_per_host=2.0) as client:
        for _ in range(4):
            client.resolve_tag(registry_proxy.host, repo, "v1")
    # A burst of two, then a reservation of half a second per request (the recorded sleep never waits).
    assert sleeps.waits == [pytest.approx(0.5, abs=0.05), pytest.approx(1.0, abs=0.05)]


def test_retry_after_reads_seconds_and_http_dates():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = parse_retry_after(format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True))
    assert later is not None and 15 < later <= 20
    assert parse_retry_after(format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)) == 0.0


def test_bearer_challenge_parsing():
    header = 'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"'
    assert parse_bearer_challenge(header) == {
        "realm": "https://auth.example/token",
        "service": "reg",
        "scope": "repository:a/b:pull,push",
    }
    assert parse_bearer_challenge('Basic realm="x"') is None
    assert parse_bearer_challenge(None) is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:5000", True),
        ("127.8.9.10", True),
        ("localhost:5000", True),
        ("[::1]:5000", True),
        ("[::1]", True),
        ("gcr.io", False),
        ("us-central1-docker.pkg.dev", False),
        ("128.0.0.1:5000", False),
        ("localhost.example.com", False),
    ],
)
def test_plain_http_only_on_loopback(host, loopback):
    assert is_loopback(host) is loopback
    assert scheme_for(host) == ("http" if loopback else "https")


@pytest.mark.parametrize(
    ("host", "google"),
    [
        ("gcr.io", True),
        ("us.gcr.io", True),
        ("europe-west1-docker.pkg.dev", True),
        ("registry.k8s.io", False),
        ("evilgcr.io", False),
        ("127.0.0.1:5000", False),
    ],
)
def test_google_hosts(host, google):
    assert is_google_host(host) is google


def test_token_request_counts_as_a_call(registry: RegistryServer, registry_proxy: RegistryProxy, repo):
    push_image(registry.host, repo, tag="v1")
    registry_proxy.require_token = True
    registry_proxy.fail_next(1, status=503, retry_after="0")
    with make_client(registry_proxy) as client:
        client.resolve_tag(registry_proxy.host, repo, "v1")
        # 503, retry: 401, token, retry with token.
        assert client.calls == 4
    assert len(registry_proxy.token_requests()) == 1


class FakeCredentials(google.auth.credentials.Credentials):
    """Credentials whose refresh needs no metadata server."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.refreshes = 0

    def refresh(self, request) -> None:
        if self.fail:
            raise google.auth.exceptions.RefreshError("metadata server unreachable")
        self.refreshes += 1
        self.token = f"token-{self.refreshes}"
        self.expiry = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)


def test_google_credentials_are_created_on_first_use_and_refreshed_when_needed():
    made: list[FakeCredentials] = []

    def factory() -> FakeCredentials:
        made.append(FakeCredentials())
        return made[-1]

    tokens = GoogleTokens(factory)
    assert made == []
    assert tokens.token() == "token-1"
    assert tokens.token() == "token-1"
    assert len(made) == 1 and made[0].refreshes == 1


def test_missing_google_credentials_mean_anonymous_access(caplog):
    calls = []

    def factory() -> FakeCredentials:
        calls.append(1)
        raise google.auth.exceptions.DefaultCredentialsError("no ADC")

    tokens = GoogleTokens(factory)
    assert tokens.token() is None
    assert tokens.token() is None
    assert calls == [1]
    assert "reading Google registries anonymously" in caplog.text


def test_failed_google_refresh_is_a_transport_error():
    with pytest.raises(TransportError, match="could not refresh the Google access token"):
        GoogleTokens(lambda: FakeCredentials(fail=True)).token()


def test_no_credentials_factory_means_anonymous():
    assert GoogleTokens(None).token() is None


@pytest.mark.parametrize(
    ("host", "realm", "followed"),
    [
        ("registry.example", "https://registry.example/v2/token", True),
        ("registry.example", "https://REGISTRY.example:443/v2/token", True),
        ("registry.example", "https://mirror.example/token", True),  # another registry of the manifests
        ("registry.example", "https://auth.example/token", False),
        ("registry.example", "http://registry.example/v2/token", False),
        ("registry.example", "http://127.0.0.1:5000/token", False),
        ("127.0.0.1:5000", "http://127.0.0.1:5000/token", True),
        ("127.0.0.1:5000", "http://127.0.0.1:6000/token", False),
        ("127.0.0.1:5000", "http://mirror.example/token", False),
        ("127.0.0.1:5000", "ftp://127.0.0.1:5000/token", False),
    ],
)
def test_token_realms_only_on_registries_of_the_manifests(host, realm, followed):
    realm_hosts = frozenset({host, "mirror.example"})
    if followed:
        check_realm(host, realm, realm_hosts)
    else:
        with pytest.raises(TransportError, match="nothing was sent there"):
            check_realm(host, realm, realm_hosts)


def test_rate_limiter_refuses_a_wait_past_the_deadline():
    clock = FakeClock()
    bucket = TokenBucket(1.0, burst=1, clock=clock, sleep=clock.sleep)
    bucket.acquire(Deadline(5.0, clock))
    with pytest.raises(TransportError, match="past the deadline"):
        bucket.acquire(Deadline(0.5, clock))
    bucket.acquire(Deadline(1.5, clock))
    assert clock.now == 1001.0


def test_a_trickling_body_is_cut_off_even_outside_a_decision(registry: RegistryServer, registry_proxy, repo):
    digest = push_image(registry.host, repo)
    registry_proxy.trickle(0.05)
    started = time.monotonic()
    client = make_client(registry_proxy, request_seconds=1.0, max_attempts=1)
    with client, pytest.raises(RegistryUnavailable, match=r"out of time|timed out"):
        client.get_manifest(registry_proxy.host, repo, digest)
    assert time.monotonic() - started < 2.0
