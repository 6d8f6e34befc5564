"""Test-wide settings: nothing in the suite may reach a Google metadata server or the internet."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings

from tests.support import signing

# google-auth probes the GCE metadata server when it looks for credentials; point every probe at a
# closed loopback port so a test can never leave this machine.
os.environ.setdefault("NO_GCE_CHECK", "True")
os.environ["GCE_METADATA_HOST"] = "127.0.0.1:1"
os.environ["GCE_METADATA_IP"] = "127.0.0.1:1"

# The machines are shared and noisy: no per-example deadline. In CI the examples are derived from the test
# itself, so a run is repeatable; locally they vary, to keep finding new cases.
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

pytest_plugins = [
    "tests.support.registry",
    "tests.support.proxy",
    "tests.support.gcs",
    "tests.support.pubsub",
    "tests.support.oidc",
    "tests.support.sigstore_fixtures",
]

# Signatures pushed by the tests are signed by the tests' own Sigstore instance: the functions and CLI
# commands the tests start trust it (a test may still override these in a process's environment).
_ROOT = Path(tempfile.mkdtemp(prefix="auditor-trusted-root-")) / "trusted_root.json"
_ROOT.write_bytes(signing.INSTANCE.trusted_root_json())
atexit.register(shutil.rmtree, _ROOT.parent, True)
os.environ["AUDITOR_TRUSTED_ROOT"] = str(_ROOT)
os.environ["AUDITOR_SIGNERS"] = signing.SIGNERS
