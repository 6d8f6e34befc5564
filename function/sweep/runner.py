"""The sweep: every destination registry host of the index, in parallel, within a time budget.

Each host is swept by one thread with its own registry client (so that the calls of each verdict are its
own, under the transport's per-host rate limit). The index is one value for every host, and what the
hosts' decisions learn from the registries is shared in one bounded ``Learned``. A part that a fault or the
budget left unswept is named in the summary and never reported MISSING.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from function import verdict as v
from function.auditor import Auditor
from function.deadline import Clock, Sleep
from function.index.digests import DigestIndex
from function.index.image import Image
from function.index.source import FixedIndex
from function.learned import Learned
from function.reference import normalize_prefix, prefix_over
from function.registry.client import RegistryClient, RegistryError
from function.registry.listing import HostWalk, Listed, Unlisted, short_reason
from function.settings import DEFAULT_SWEEP_MAX_SECONDS
from function.signatures import SigningPolicy
from function.storage.base import Records
from function.sweep import verified
from function.sweep.reconcile import Outcome, RepositoryCheck
from function.sweep.unsigned import SigningRequirement
from function.verdict import Verdict

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 8
# Parts that failed are listed once more after this pause: longer than the client's cool-down of a host
# that failed every attempt, during which it sends nothing to that host (a blip would otherwise leave a
# swath of repositories unswept).
RETRY_PAUSE = 15.0
# A whole region down would otherwise name every one of its repositories in the one summary line.
MAX_UNSWEPT_NAMED_PER_HOST = 20

RegistryFactory = Callable[[frozenset[str]], RegistryClient]
FindingSink = Callable[[Verdict], None]
Progress = Callable[[str, int, int], None]


@dataclass
class Summary:
    hosts: int = 0
    repositories: int = 0
    manifests: int = 0
    rejected: int = 0
    missing: int = 0
    unsigned: int = 0
    """Of the MISSING, those ``unsigned``."""
    unswept: list[dict[str, str]] = field(default_factory=list)
    registry_calls: int = 0
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.unswept

    @property
    def clean(self) -> bool:
        return self.rejected == 0 and self.missing == 0

    @property
    def severity(self) -> int:
        return logging.INFO if self.clean and self.complete else logging.ERROR

    def fields(self) -> dict[str, Any]:
        return {
            "hosts": self.hosts,
            "repositories": self.repositories,
            "manifests": self.manifests,
            "rejected": self.rejected,
            "missing": self.missing,
            "unsigned": self.unsigned,
            "unswept": self.unswept,
            "registry_calls": self.registry_calls,
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
        }

    def message(self) -> str:
        state = "complete" if self.complete else f"incomplete ({len(self.unswept)} parts unswept)"
        return (
            f"Sweep of {self.hosts} registry hosts, {self.repositories} repositories, {self.manifests} manifests: "
            f"{self.rejected} REJECTED, {self.missing} MISSING ({self.unsigned} unsigned), {state}."
        )


@dataclass
class Result:
    findings: list[Verdict]
    summary: Summary


@dataclass
class _HostResult:
    repositories: int = 0
    manifests: int = 0
    findings: list[Verdict] = field(default_factory=list)
    unswept: list[Unlisted] = field(default_factory=list)
    calls: int = 0

    def add(self, outcome: Outcome) -> None:
        self.repositories += 1
        self.manifests += outcome.manifests
        self.findings += outcome.findings
        self.unswept += outcome.unswept


class Sweep:
    def __init__(
        self,
        index: DigestIndex,
        *,
        registry_factory: RegistryFactory = RegistryClient,
        frozen_prefixes: Sequence[str] = (),
        max_seconds: float = DEFAULT_SWEEP_MAX_SECONDS,
        workers: int = DEFAULT_WORKERS,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        on_finding: FindingSink | None = None,
        on_progress: Progress | None = None,
        on_listing: Callable[[str], None] | None = None,
        signing: SigningPolicy | None = None,
        requirement: SigningRequirement | None = None,
        signed_records: Records | None = None,
    ) -> None:
        """``signing``: whose signatures count; ``requirement``: where every promoted digest must be signed
        (none by default); ``signed_records``: where verified signatures are remembered between sweeps;
        ``on_listing``: hears each host and repository as its listing starts (from the hosts' threads)."""
        if max_seconds <= 0 or workers < 1:
            raise ValueError("max_seconds must be positive and workers at least 1")
        self.index = index
        self.registry_factory = registry_factory
        self.frozen_prefixes = tuple(normalize_prefix(p) for p in frozen_prefixes)
        self.max_seconds = max_seconds
        self.workers = workers
        self.clock = clock
        self.sleep = sleep
        self.on_finding = on_finding
        self.on_progress = on_progress
        self.on_listing = on_listing
        self.signing = signing
        self.requirement = requirement or SigningRequirement()
        self.signed_records = signed_records
        self.learned = Learned()
        self._lock = threading.Lock()

    def hosts(self) -> list[str]:
        """The destination registry hosts of the index (frozen prefixes left out)."""
        return sorted({d.split("/", 1)[0] for d in self._destinations()})

    def run(self, hosts: Collection[str] | None = None) -> Result:
        """Sweep ``hosts`` (all destination hosts by default); ValueError for a host that is not one."""
        known = self.hosts()
        chosen = known if hosts is None else sorted({h.lower() for h in hosts})
        unknown = [h for h in chosen if h not in known]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} is not a destination registry host of the index; "
                f"choose among: {', '.join(known) or '(none)'}"
            )
        started = self.clock()
        deadline = started + self.max_seconds
        policy = self.signing or SigningPolicy.default()
        recalled = verified.recall(self.signed_records, policy) if self.signed_records is not None else None
        for digest, subject, outcome in recalled.verified if recalled is not None else ():
            self.learned.remember_signature(digest, subject, outcome)
        with ThreadPoolExecutor(max_workers=min(self.workers, max(1, len(chosen)))) as pool:
            results = list(pool.map(lambda host: self._host(host, deadline), chosen))
        if self.signed_records is not None and recalled is not None:
            verified.record(self.signed_records, policy, self.learned.verified_signatures(), recalled)
        summary = Summary(hosts=len(chosen))
        findings: list[Verdict] = []
        for host, result in zip(chosen, results, strict=True):
            summary.repositories += result.repositories
            summary.manifests += result.manifests
            summary.registry_calls += result.calls
            summary.unswept += _named(host, result.unswept)
            findings += result.findings
        summary.rejected = sum(1 for f in findings if f.verdict == v.Kind.REJECTED)
        summary.missing = sum(1 for f in findings if f.verdict == v.Kind.MISSING)
        summary.unsigned = sum(1 for f in findings if f.reason == v.Reason.UNSIGNED)
        summary.seconds = self.clock() - started
        return Result(findings, summary)

    # --- one host -----------------------------------------------------------------------------------

    def _host(self, host: str, deadline: float) -> _HostResult:
        result = _HostResult()
        registry = self.registry_factory(self.index.registry_hosts())
        try:
            roots = [d.split("/", 1)[1] for d in self._destinations() if d.split("/", 1)[0] == host]
            walk = HostWalk(registry, host, roots, skip=self._frozen, on_listing=self.on_listing)
            _HostSweep(self, walk, self._auditor(registry), deadline, result).run(self._expected(host))
        finally:
            result.calls = registry.calls
            registry.close()
        return result

    def notify(self, host: str, outcome: Outcome, out: _HostResult) -> None:
        """Hand a repository's findings and the host's progress to the callbacks, one thread at a time."""
        with self._lock:
            for finding in outcome.findings:
                if self.on_finding is not None:
                    self.on_finding(finding)
            if self.on_progress is not None:
                self.on_progress(host, out.repositories, len(out.findings))

    def _auditor(self, registry: RegistryClient) -> Auditor:
        # No frozen prefixes: frozen paths are not swept at all (every INSERT there would be `frozen`).
        # Never waits for a list not yet pushed: what the registries hold now decides (parent_wait_seconds=0).
        return Auditor(
            FixedIndex(self.index), registry, learned=self.learned, parent_wait_seconds=0, signing=self.signing
        )

    def _expected(self, host: str) -> dict[str, Image]:
        """Every promoted image path on ``host``, with the image the index answers for it."""
        index = self.index
        expected: dict[str, Image] = {}
        for project in index.projects.values():
            for destination in project.destinations:
                if destination.split("/", 1)[0] != host or self._frozen(destination):
                    continue
                for name in project.images:
                    location = index.locate(f"{destination}/{name}")
                    if location is not None and location.image is not None:
                        expected[f"{destination}/{name}"] = location.image
        return expected

    def _destinations(self) -> list[str]:
        return [d for p in self.index.projects.values() for d in p.destinations if "/" in d and not self._frozen(d)]

    def _frozen(self, path: str) -> bool:
        return prefix_over(path, self.frozen_prefixes) is not None


class _HostSweep:
    """One host: walk it, check each repository, give failed parts a second chance, then look for what
    was expected there and not reached."""

    def __init__(self, sweep: Sweep, walk: HostWalk, auditor: Auditor, deadline: float, out: _HostResult) -> None:
        self.sweep = sweep
        self.walk = walk
        self.auditor = auditor
        self.registry = walk.registry
        self.deadline = deadline
        self.out = out
        self.reached: set[str] = set()

    def run(self, expected: dict[str, Image]) -> None:
        faults = self._pass()
        if faults and self.sweep.clock() + RETRY_PAUSE < self.deadline:
            faults = self._again(faults)
        if faults is None:
            return
        self.out.unswept += faults
        for path, image in sorted(expected.items()):
            if path in self.reached or any(_covers(fault, path) for fault in faults):
                continue
            if self._expired():
                self._unreached([Unlisted(path, "", nested=False)])
                continue
            try:
                listed = self.walk.unreached(path.split("/", 1)[1])
            except RegistryError as error:
                self.out.unswept.append(Unlisted(path, short_reason(error), nested=False))
                continue
            self._check(listed, image)

    def _pass(self) -> list[Unlisted] | None:
        """List and check what the walk has left; returns the parts that failed, or None when the budget
        ran out (what was not reached is then named as unswept)."""
        faults: list[Unlisted] = []
        items = iter(self.walk)
        while not self._expired():
            item = next(items, None)
            if item is None:
                return faults
            if isinstance(item, Unlisted):
                faults.append(item)
            else:
                self.reached.add(item.path)
                self._check(item)
        self.out.unswept += faults
        self._unreached(self.walk.pending())
        return None

    def _again(self, faults: list[Unlisted]) -> list[Unlisted] | None:
        self.sweep.sleep(RETRY_PAUSE)
        self.walk.retry(faults)
        again = self._pass()
        if again is None:
            return None
        # The first failure names the cause; the second only says that it lasted.
        first = {fault.path: fault.reason for fault in faults}
        lasted = f"(and again after {RETRY_PAUSE:g} s)"
        return [Unlisted(f.path, f"{first.get(f.path, f.reason)} {lasted}", f.nested) for f in again]

    def _check(self, listed: Listed, image: Image | None = None) -> None:
        index = self.sweep.index
        if image is None:
            location = index.locate(listed.path)
            image = location.image if location is not None else None
        outcome = RepositoryCheck(index, self.auditor, self.registry, listed, image, self.sweep.requirement).run()
        self.out.add(outcome)
        self.sweep.notify(self.walk.host, outcome, self.out)

    def _expired(self) -> bool:
        return self.sweep.clock() >= self.deadline

    def _unreached(self, parts: list[Unlisted]) -> None:
        reason = f"not reached within the sweep's budget of {self.sweep.max_seconds:g} s"
        self.out.unswept += [Unlisted(part.path, reason, part.nested) for part in parts]


def report_summary(logger: logging.Logger, summary: Summary) -> None:
    """The summary line: the key ``sweep``, INFO when clean and complete, else ERROR."""
    v.report(logger, summary.severity, summary.message(), sweep=summary.fields())


def finding_line(finding: Verdict) -> dict[str, Any]:
    """A finding as its verdict line reads, severity included (for reports written to a file)."""
    return {"severity": logging.getLevelName(finding.severity), **finding.fields()}


def _covers(fault: Unlisted, path: str) -> bool:
    return path == fault.path or (fault.nested and path.startswith(fault.path + "/"))


def _named(host: str, parts: list[Unlisted]) -> list[dict[str, str]]:
    named = [{"path": part.path, "reason": part.reason} for part in parts[:MAX_UNSWEPT_NAMED_PER_HOST]]
    if len(parts) > MAX_UNSWEPT_NAMED_PER_HOST:
        rest = len(parts) - MAX_UNSWEPT_NAMED_PER_HOST
        named.append({"path": host, "reason": f"{rest} more parts of {host} unswept"})
    return named
