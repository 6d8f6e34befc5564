"""``Settings``: the contract's defaults, every bad value named by its variable, and the error table."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from function.cli.common import CommandError
from function.errors import PERMANENT, RETRYABLE, kind
from function.settings import Oidc, SettingError, Settings
from function.storage.errors import CorruptIndex, GenerationMismatch, StoreDenied, StoreError, StoreMissing


def test_an_empty_environment_gives_the_contracts_defaults() -> None:
    settings = Settings.from_environment({})
    assert settings == Settings()
    assert (settings.refresh_seconds, settings.pending_grace_seconds, settings.deadline_seconds) == (60, 1800, 50)
    assert (settings.parent_wait_seconds, settings.sweep_max_seconds) == (600, 3000)
    assert (settings.branch, settings.manifests_subdir, settings.frozen_prefixes) == ("main", "registry.k8s.io", ())
    assert settings.signing_registry == "us-central1-docker.pkg.dev/k8s-artifacts-prod/images"
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
        ({"AUDITOR_BRANCH": ""}, "AUDITOR_BRANCH"),
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
    libraries = "('google.cloud.', 'google.api_core', 'google.auth')"
    code = f"import sys, function.settings; print(sorted(m for m in sys.modules if m.startswith({libraries})))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
