"""A loopback server answering as GitHub's REST API does for the two endpoints ``sync_index`` asks, from a
commit graph the test builds:

- "Get a commit", ``GET /repos/kubernetes/k8s.io/commits/{ref}``
  (https://docs.github.com/en/rest/commits/commits#get-a-commit): ``sha`` and ``commit.author.date`` /
  ``commit.committer.date`` (the two may differ, as they do for rebased or cherry-picked commits), for a
  branch of ``heads`` or a commit SHA;
- "Compare two commits", ``GET /repos/kubernetes/k8s.io/compare/{base}...{head}``
  (https://docs.github.com/en/rest/commits/commits#compare-two-commits): ``status`` (``ahead``,
  ``behind``, ``identical``, ``diverged``), ``ahead_by``, ``behind_by``, ``total_commits``,
  ``merge_base_commit`` and ``commits``, computed from the graph; 404 for a commit it does not hold.

Every request's path and ``Authorization`` header are kept; ``answers`` replaces an endpoint's answer
(a 500, a rate limit's 403) to test the faults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.process import ThreadedHTTPServer

REPO = "/repos/kubernetes/k8s.io"
# What GitHub answers when the anonymous allowance of an address is spent.
RATE_LIMITED = (
    403,
    {
        "message": "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated requests "
        "get a higher rate limit. Check out the documentation for more details.)",
        "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting",
    },
)
SERVER_ERROR = (500, {"message": "Server Error"})


@dataclass
class Commit:
    parents: tuple[str, ...]
    committed_at: str
    authored_at: str


class GitHubServer(ThreadedHTTPServer):
    def __init__(self) -> None:
        self.commits: dict[str, Commit] = {}
        self.heads: dict[str, str] = {}
        self.requests: list[str] = []
        self.authorizations: list[tuple[str, str | None]] = []
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}
        """``"commits"`` or ``"compare"``: what that endpoint answers instead, whatever is asked."""
        self._main: str | None = None
        super().__init__(self._handler())

    @property
    def head_template(self) -> str:
        """What ``AUDITOR_HEAD_URL`` must hold."""
        return f"{self.url}{REPO}/commits/{{branch}}"

    @property
    def compare_template(self) -> str:
        """What ``AUDITOR_COMPARE_URL`` must hold."""
        return f"{self.url}{REPO}/compare/{{base}}...{{head}}"

    def add(
        self, sha: str, committed_at: str, *, parents: tuple[str, ...] | None = None, authored_at: str | None = None
    ) -> str:
        """Commit ``sha``: with ``parents``, off the main line; by default the next commit of the main
        line (a child of the last one). Adding a commit the graph holds again only changes its times.
        Returns ``sha``."""
        known = self.commits.get(sha)
        if parents is None and known is not None:
            parents = known.parents
        elif parents is None:
            parents = (self._main,) if self._main else ()
            self._main = sha
        self.commits[sha] = Commit(parents, committed_at, authored_at or committed_at)
        return sha

    def compare(self, base: str, head: str) -> dict[str, Any]:
        """The comparison GitHub answers for ``base...head``."""
        if base == head:
            return self._comparison("identical", base, base, [], 0)
        head_line, base_line = self._ancestry(head), self._ancestry(base)
        ahead = [sha for sha in head_line if sha not in base_line]
        behind = [sha for sha in base_line if sha not in head_line]
        merge_base = next((sha for sha in head_line if sha in base_line), None)
        status = "ahead" if not behind else "behind" if not ahead else "diverged"
        return self._comparison(status, base, merge_base, ahead, len(behind))

    def _ancestry(self, sha: str) -> list[str]:
        """``sha`` and every ancestor, nearest first."""
        seen, queue = [sha], [sha]
        while queue:
            for parent in self.commits[queue.pop(0)].parents:
                if parent not in seen:
                    seen.append(parent)
                    queue.append(parent)
        return seen

    def _comparison(
        self, status: str, base: str, merge_base: str | None, ahead: list[str], behind_by: int
    ) -> dict[str, Any]:
        return {
            "url": f"{self.url}{REPO}/compare/{base}...",
            "status": status,
            "ahead_by": len(ahead),
            "behind_by": behind_by,
            "total_commits": len(ahead),
            "base_commit": self._commit(base),
            "merge_base_commit": self._commit(merge_base) if merge_base else None,
            "commits": [self._commit(sha) for sha in reversed(ahead)],
            "files": [],
        }

    def _commit(self, sha: str) -> dict[str, Any]:
        commit = self.commits[sha]
        person = {"name": "k8s-ci-robot", "email": "k8s-ci-robot@example.com"}
        return {
            "sha": sha,
            "node_id": "C_test",
            "commit": {
                "author": {**person, "date": commit.authored_at},
                "committer": {**person, "date": commit.committed_at},
                "message": "Merge pull request",
            },
            "url": f"{self.url}{REPO}/commits/{sha}",
            "parents": [{"sha": parent} for parent in commit.parents],
        }

    def _answer_for(self, path: str) -> tuple[str, int, dict[str, Any]]:
        if path.startswith(f"{REPO}/commits/"):
            ref = path.removeprefix(f"{REPO}/commits/")
            sha = self.heads.get(ref, ref)
            if sha not in self.commits:
                return "commits", 404, {"message": f"No commit found for SHA: {ref}"}
            return "commits", 200, {**self._commit(sha), "files": []}
        if path.startswith(f"{REPO}/compare/"):
            base, _, head = path.removeprefix(f"{REPO}/compare/").partition("...")
            if base not in self.commits or head not in self.commits:
                return "compare", 404, {"message": "Not Found"}
            return "compare", 200, self.compare(base, head)
        return "", 404, {"message": "Not Found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                server.authorizations.append((self.path, self.headers.get("Authorization")))
                endpoint, status, document = server._answer_for(self.path)
                status, document = server.answers.get(endpoint, (status, document))
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                if status == RATE_LIMITED[0]:
                    self.send_header("X-RateLimit-Remaining", "0")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler
