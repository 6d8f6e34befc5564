"""An auditor over a promotion published to Debian's registry behind the counting proxy: the manifests
name the proxy's host, so every request the auditor or the sync makes is seen and counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from function.auditor import Auditor
from function.index.digests import DigestIndex, Source
from function.index.publish import read_index, rebuild
from function.index.source import FixedIndex
from function.registry.client import RegistryClient
from function.storage.uri import open_store
from function.verdict import Verdict
from tests.support import scenario, signing
from tests.support.clock import FakeClock
from tests.support.proxy import RegistryProxy


def client(hosts: frozenset[str], clock: FakeClock | None = None) -> RegistryClient:
    # No real sleeping: retries and Retry-After are asserted on the proxy's records instead.
    clock = clock or FakeClock()
    return RegistryClient(hosts, sleep=clock.sleep, clock=clock)


@pytest.fixture
def promotion(registry_proxy: RegistryProxy) -> scenario.Promotion:
    promotion = scenario.promote(registry_proxy.host, via=registry_proxy.host)
    registry_proxy.clear()
    return promotion


def publish(tmp_path: Path, promotion: scenario.Promotion, commit: str, out: Path, *, offline: bool = False) -> int:
    root = promotion.write_manifests(commit, tmp_path / commit)
    published = rebuild(
        root, open_store(str(out)), source=Source(commit=commit), registry_factory=None if offline else client
    )
    return published.resolution.calls if published.resolution else 0


def audited(
    tmp_path: Path, promotion: scenario.Promotion, commit: str = "commit-1", *, clock: FakeClock | None = None
) -> Auditor:
    """An auditor over the index published for ``commit`` at ``tmp_path / "index.json"``."""
    publish(tmp_path, promotion, commit, tmp_path / "index.json")
    index = load(tmp_path / "index.json")
    return Auditor(FixedIndex(index), client(index.registry_hosts(), clock), signing=signing.policy())


def load(out: Path) -> DigestIndex:
    loaded = read_index(open_store(str(out)))
    assert loaded is not None
    return loaded


# --- deciding one event -------------------------------------------------------------------------


def decide(auditor: Auditor, path: str, digest: str | None = None, tag: str | None = None) -> Verdict:
    payload = {"action": "INSERT"}
    if digest is not None:
        payload["digest"] = f"{path}@{digest}"
    if tag is not None:
        payload["tag"] = f"{path}:{tag}"
    return auditor.audit_payload(json.dumps(payload))


def outcome(verdict: Verdict) -> tuple[str, str | None, int]:
    return verdict.verdict, verdict.basis or verdict.reason, verdict.registry_calls


def fallback_tag(digest: str) -> str:
    return digest.replace(":", "-")


def cosign_tag(digest: str, kind: str) -> str:
    return f"{fallback_tag(digest)}.{kind}"
