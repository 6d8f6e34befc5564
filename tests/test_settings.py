"""``Settings``: the contract's defaults, every bad value named by its variable, and the error table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from function.cli.common import CommandError
from function.errors import PERMANENT, RETRYABLE, kind
from function.settings import Oidc, SettingError, Settings
from function.signatures import SigningPolicy
from function.storage.errors import CorruptIndex, GenerationMismatch, StoreDenied, StoreError, StoreMissing
from function.storage.gcs import default_client
from tests.support import signing
from tests.support.imports import loaded_by


def test_an_empty_environment_gives_the_contracts_defaults() -> None:
    settings = Settings.from_environment({})
    assert settings == Settings()
    assert (settings.refresh_seconds, settings.pending_grace_seconds, settings.deadline_seconds) == (60, 1800, 50)
    assert (settings.parent_wait_seconds, settings.sweep_max_seconds) == (600, 3000)
    assert (settings.branch, settings.manifests_subdir, settings.frozen_prefixes) == ("main", "registry.k8s.io", ())
    assert settings.signing_registry == "us-central1-docker.pkg.dev/k8s-artifacts-prod/images"
    assert (settings.head_url, settings.compare_url, settings.github_token) == (
        "https://api.github.com/repos/kubernetes/k8s.io/commits/{branch}",
        "https://api.github.com/repos/kubernetes/k8s.io/compare/{base}...{head}",
        None,
    )
    with pytest.raises(SettingError, match="AUDITOR_INDEX_URI is not set"):
        settings.required_index_uri()


def test_values_are_read_as_the_functions_use_them() -> None:
    settings = Settings.from_environment(
        {
            "AUDITOR_INDEX_URI": "gs://bucket/index.json.gz",
            "AUDITOR_MANIFESTS_SUBDIR": "",
            "AUDITOR_WEBHOOK_SECRET": " s3cret ",
            "AUDITOR_SYNC_QUEUE": " projects/p/topics/t ",
            "AUDITOR_FROZEN_PREFIXES": "EU.gcr.io/k8s-artifacts-prod/, ,gcr.io/k8s-artifacts-prod",
            "AUDITOR_SIGNING_REGISTRY": "",
            "AUDITOR_SIGNED_SINCE": "2022-06-01T00:00:00Z",
            "AUDITOR_DEADLINE_SECONDS": "7.5",
            "AUDITOR_COMPARE_URL": "https://ghe.example/api/v3/repos/k/k/compare/{base}...{head}",
            "AUDITOR_GITHUB_TOKEN": " ghp_token\n",
        }
    )
    assert settings.required_index_uri() == "gs://bucket/index.json.gz"
    assert (settings.manifests_subdir, settings.webhook_secret, settings.sync_queue) == (
        "",
        " s3cret ",
        "projects/p/topics/t",
    )
    assert settings.frozen_prefixes == ("eu.gcr.io/k8s-artifacts-prod", "gcr.io/k8s-artifacts-prod")
    assert settings.signing_registry == ""
    assert settings.signed_since == dt.datetime(2022, 6, 1, tzinfo=dt.UTC)
    assert settings.deadline_seconds == 7.5
    assert settings.compare_url == "https://ghe.example/api/v3/repos/k/k/compare/{base}...{head}"
    assert settings.github_token == "ghp_token"  # as Secret Manager values often end: with a newline


AUDIENCE = {"AUDITOR_OIDC_AUDIENCE": "https://us-central1-p.cloudfunctions.net/auditor-sync"}
INVOKER = {"AUDITOR_OIDC_INVOKERS": "auditor-scheduler@p.iam.gserviceaccount.com"}


def test_the_oidc_invokers_are_read_as_the_sync_checks_them() -> None:
    assert Settings.from_environment({}).oidc is None
    environ = AUDIENCE | {
        "AUDITOR_OIDC_INVOKERS": " Auditor-Scheduler@p.iam.gserviceaccount.com, q@p.iam.gserviceaccount.com,"
    }
    oidc = Settings.from_environment(environ).oidc
    assert oidc == Oidc(
        AUDIENCE["AUDITOR_OIDC_AUDIENCE"],
        frozenset({"auditor-scheduler@p.iam.gserviceaccount.com", "q@p.iam.gserviceaccount.com"}),
        "https://www.googleapis.com/oauth2/v1/certs",
    )
    loopback = Settings.from_environment(environ | {"AUDITOR_OIDC_CERTS_URL": "http://127.0.0.1:8123/oauth2/v1/certs"})
    assert loopback.oidc is not None and loopback.oidc.certs_url == "http://127.0.0.1:8123/oauth2/v1/certs"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"AUDITOR_REFRESH_SECONDS": "0"}, "AUDITOR_REFRESH_SECONDS"),
        ({"AUDITOR_PARENT_WAIT_SECONDS": "soon"}, "AUDITOR_PARENT_WAIT_SECONDS"),
        ({"AUDITOR_SWEEP_MAX_SECONDS": "inf"}, "AUDITOR_SWEEP_MAX_SECONDS"),
        ({"AUDITOR_FROZEN_PREFIXES": "not a prefix!"}, "AUDITOR_FROZEN_PREFIXES"),
        ({"AUDITOR_SIGNING_REGISTRY": "UPPER//x"}, "AUDITOR_SIGNING_REGISTRY"),
        ({"AUDITOR_SIGNED_SINCE": "2022-06-01"}, "AUDITOR_SIGNED_SINCE"),
        ({"AUDITOR_SIGNERS": ""}, "AUDITOR_SIGNERS"),
        ({"AUDITOR_SIGNERS": "krel-trust@k8s-releng-prod.iam.gserviceaccount.com"}, "AUDITOR_SIGNERS"),
        ({"AUDITOR_BRANCH": ""}, "AUDITOR_BRANCH"),
        ({"AUDITOR_COMPARE_URL": "https://api.github.com/repos/k/k/compare/{head}"}, "AUDITOR_COMPARE_URL"),
        ({"AUDITOR_COMPARE_URL": "https://h/{owner}/compare/{base}...{head}"}, "AUDITOR_COMPARE_URL"),
        ({"AUDITOR_HEAD_URL": "https://h/commits/{branch"}, "AUDITOR_HEAD_URL"),
        ({"AUDITOR_OIDC_AUDIENCE": "sync.example"} | INVOKER, "AUDITOR_OIDC_AUDIENCE"),
        ({"AUDITOR_OIDC_AUDIENCE": "http://sync.example"} | INVOKER, "AUDITOR_OIDC_AUDIENCE"),
        (INVOKER, "AUDITOR_OIDC_AUDIENCE"),
        (AUDIENCE, "AUDITOR_OIDC_INVOKERS"),
        (AUDIENCE | {"AUDITOR_OIDC_INVOKERS": "scheduler"}, "AUDITOR_OIDC_INVOKERS"),
        (AUDIENCE | {"AUDITOR_OIDC_INVOKERS": "a@b.iam.gserviceaccount.com;c@d.com"}, "AUDITOR_OIDC_INVOKERS"),
        # Whoever serves the keys decides who gets in: only a test's loopback server may stand in for Google.
        (AUDIENCE | INVOKER | {"AUDITOR_OIDC_CERTS_URL": "https://keys.example/certs"}, "AUDITOR_OIDC_CERTS_URL"),
    ],
)
def test_a_bad_value_is_a_permanent_error_naming_its_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingError) as raised:
        Settings.from_environment(environ)
    assert raised.value.variable == variable
    assert variable in str(raised.value)
    assert kind(raised.value) == PERMANENT


def test_the_error_table() -> None:
    assert (PERMANENT.exit_code, PERMANENT.http_status, RETRYABLE.exit_code, RETRYABLE.http_status) == (2, 503, 75, 503)
    # Audit code catches every StoreError as a fault; the missing and the refused are still to be fixed.
    for to_fix in (StoreMissing("x"), StoreDenied("x")):
        assert isinstance(to_fix, StoreError) and kind(to_fix) == PERMANENT
    for fault in (StoreError("x"), GenerationMismatch("x"), CorruptIndex("x")):
        assert kind(fault) == RETRYABLE
    assert kind(CommandError("x")) == PERMANENT


def test_settings_load_without_google_cloud_libraries() -> None:
    # The bare google and google.cloud namespaces come with the interpreter's .pth files, not an import.
    assert loaded_by(["function.settings"], ("google.cloud.", "google.api_core", "google.auth")) == []


def test_the_trusted_root_is_read_at_start_and_parsed_at_the_first_signature(tmp_path: Path) -> None:
    settings = Settings.from_environment({"AUDITOR_SIGNERS": "a@example.com=https://accounts.google.com"})
    assert [str(signer) for signer in settings.signers] == ["a@example.com=https://accounts.google.com"]
    missing = Settings.from_environment({"AUDITOR_TRUSTED_ROOT": str(tmp_path / "absent.json")})
    with pytest.raises(SettingError) as unread:
        SigningPolicy.from_settings(missing)
    assert unread.value.variable == "AUDITOR_TRUSTED_ROOT" and kind(unread.value) == PERMANENT
    (tmp_path / "root.json").write_text("{}")
    policy = SigningPolicy.from_settings(
        Settings.from_environment({"AUDITOR_TRUSTED_ROOT": str(tmp_path / "root.json")})
    )
    with pytest.raises(SettingError) as unusable:
        policy.trust  # noqa: B018 - reading it is the test
    assert unusable.value.variable == "AUDITOR_TRUSTED_ROOT"


def test_neither_the_cli_nor_the_functions_load_signature_libraries_at_import() -> None:
    # About half a second of imports, paid by the first signature an instance checks, not by a cold start.
    libraries = ("sigstore", "rfc8785", "function.signing.trust", "function.signing.cosign")
    assert loaded_by(["function.cli", "main"], libraries) == []


def test_a_trusted_root_in_cloud_storage_is_read(gcs_env: str) -> None:
    root = signing.INSTANCE.trusted_root_json()
    default_client().bucket(gcs_env).blob("trusted_root.json").upload_from_string(root)
    settings = Settings.from_environment({"AUDITOR_TRUSTED_ROOT": f"gs://{gcs_env}/trusted_root.json"})
    assert SigningPolicy.from_settings(settings).root == root
    absent = Settings.from_environment({"AUDITOR_TRUSTED_ROOT": f"gs://{gcs_env}/absent.json"})
    with pytest.raises(SettingError, match=r"AUDITOR_TRUSTED_ROOT=.*cannot be read"):
        SigningPolicy.from_settings(absent)
