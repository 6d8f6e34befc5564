"""The functions' services in-process on a real index store, their lines captured: the audit service on a
simulated clock (tests/test_freshness.py) and ``sync_index`` against loopback servers of commit tarballs
and branch heads (tests/test_sync.py, tests/test_confirmation.py)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from function import verdict as v
from function.github.webhook import signature
from function.index.digests import Source
from function.index.pending import PendingCommits
from function.index.publish import read_index, rebuild
from function.services.audit import AuditService, RetryLater
from function.services.sync import SyncService
from function.storage.base import IndexStore
from function.storage.local import LocalStore
from tests.support import scenario
from tests.support.clock import FakeClock
from tests.support.functions import CommitsServer, TarballServer
from tests.support.manifests import digest, write_project
from tests.support.oidc import CertServer, bearer, invokers
from tests.support.stores import CountingStore

AR = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images"


class Lines:
    """The structured lines a service wrote (verdicts, sync outcomes, alarms), in order."""

    def __init__(self) -> None:
        self.out = io.StringIO()
        self.logger = v.verdict_logger(self.out)

    def lines(self, key: str | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.out.getvalue().splitlines()]
        return [line for line in lines if key is None or key in line]


# --- the audit service ---------------------------------------------------------------------------------

REFRESH, GRACE = 60.0, 1800.0


class AuditRig(Lines):
    """An audit instance over a counting local store, on a simulated clock starting at 0."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__()
        self.tmp_path = tmp_path
        self.clock = FakeClock(0.0)
        self.store = CountingStore(tmp_path / "index.json")
        self.service = AuditService(
            self.store,
            registry_factory=lambda hosts: None,
            logger=self.logger,
            refresh_seconds=REFRESH,
            grace_seconds=GRACE,
            clock=self.clock.monotonic,
            wall=self.clock.wall,
        )
        self.pending = PendingCommits.beside(self.store, wall=self.clock.wall)
        self.commits = 0

    def publish(self, dmap: dict[str, list[str]], *, destinations: tuple[str, ...] = (AR,), hour: int = 0) -> Source:
        """Publish an index of ``pause`` with ``dmap`` at ``destinations``, from a commit of 2026-11-01 ``hour``."""
        self.commits += 1
        root = self.tmp_path / f"commit-{self.commits}"
        write_project(root, "p", destinations=list(destinations), images=[{"name": "pause", "dmap": dmap}])
        source = Source(f"{self.commits:040x}", f"2026-11-01T{hour:02d}:00:00Z")
        rebuild(root, self.store, source=source, max_loss=1.0)
        return source

    def audit(self, d: str, *, path: str = f"{AR}/pause", action: str = "INSERT") -> v.Verdict:
        body = {"message": {"data": b64({"action": action, "digest": f"{path}@{d}"}), "messageId": "1"}}
        try:
            return self.service.handle(body)
        except RetryLater:
            return self.last()

    def last(self) -> v.Verdict:
        line = [line for line in self.lines() if "verdict" in line][-1]
        return v.Verdict(line["verdict"], line["message"], reason=line["reason"], basis=line["basis"])


def b64(payload: dict[str, str]) -> str:
    return base64.b64encode(json.dumps(payload).encode()).decode()


# --- sync_index ----------------------------------------------------------------------------------------

SECRET = "s3cret"
OLD_SHA, NEW_SHA, MID_SHA, LATER_SHA = "1" * 40, "2" * 40, "4" * 40, "3" * 40
TIMES = {
    OLD_SHA: "2026-11-01T10:00:00Z",
    NEW_SHA: "2026-11-02T10:00:00Z",
    MID_SHA: "2026-11-02T12:00:00Z",
    LATER_SHA: "2026-11-03T10:00:00Z",
}


class Headers(dict[str, str]):
    def get(self, key: str, default: Any = None) -> Any:
        return next((value for name, value in self.items() if name.lower() == key.lower()), default)


class SyncRig(Lines):
    """``sync_index`` rebuilding synchronously from the tarballs of four commits of one project."""

    def __init__(
        self,
        tmp_path: Path,
        tarballs: TarballServer,
        commits: CommitsServer,
        certs: CertServer,
        store: IndexStore | None = None,
    ) -> None:
        super().__init__()
        self.store = store or LocalStore(tmp_path / "index.json")
        self.tarballs = tarballs
        self.commits = commits
        self.service = SyncService(
            self.store,
            secret=SECRET,
            manifests=f"{tarballs.url}/{{sha}}.tar.gz",
            head_url=commits.template,
            invokers=invokers(certs),
            registry_factory=None,
            logger=self.logger,
        )
        # LATER promotes what NEW does: a k8s.io commit that changes nothing promoted; MID, between them,
        # promoted a third release that LATER took back.
        for sha, releases in ((OLD_SHA, 1), (NEW_SHA, 2), (MID_SHA, 3), (LATER_SHA, 2)):
            images = [{"name": "pause", "dmap": {digest(f"pause-{m}"): [f"3.{m}"] for m in range(releases)}}]
            root = tmp_path / sha
            write_project(root, "p", destinations=[AR], images=images)
            tarballs.files[f"{sha}.tar.gz"] = scenario.tarball(root, sha, "registry.k8s.io")

    def push(self, sha: str, *, after: str | None = None, sig: str | None = None) -> tuple[int, dict[str, Any]]:
        body = json.dumps(
            {
                "ref": "refs/heads/main",
                "after": after or sha,
                "head_commit": {"timestamp": TIMES[sha]},
                "commits": [{"added": [], "removed": [], "modified": ["registry.k8s.io/images/p/images.yaml"]}],
            }
        ).encode()
        headers = Headers({"X-GitHub-Event": "push", "X-Hub-Signature-256": sig or signature(SECRET, body)})
        response = self.service.handle("POST", headers, body)
        return response.status, response.body

    def resync(self, head_sha: str) -> tuple[int, dict[str, Any]]:
        """What Cloud Scheduler sends: no ``X-GitHub-Event``, an ID token of its account."""
        self.commits.heads["main"] = (head_sha, TIMES[head_sha])
        response = self.service.handle("POST", Headers({"Authorization": bearer()}), b"")
        return response.status, response.body

    def index(self) -> tuple[Source, int | None]:
        loaded = read_index(self.store)
        assert loaded is not None
        return loaded.source, loaded.generation
