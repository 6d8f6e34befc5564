"""Test-wide settings: nothing in the suite may reach a Google metadata server or the internet."""

import os

from hypothesis import settings

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
]
