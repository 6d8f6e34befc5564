"""The decision: one registry event in, one verdict out, in one pass (decode, locate, decide).

The rules (``function.rules``) decide from the index and what the process has learned; this module feeds
them. Every promoted image and platform child is decided from the index alone. Signatures, attestations,
SBOMs and referrers are judged by their content too (one registry call per distinct manifest, then
remembered), and only an event the index would reject (a possible alarm) goes further: first a fresher
index is looked for, then, for a true miss, the registry is asked about the event's own image only. A
fault on that path, or the decision's deadline passing, leaves the decision open (RETRY); neither is ever
turned into an alarm.

An ``Auditor`` may decide on several threads at once: each decision's state is its own ``_Decision``, the
index is a value, and what is learned lives in ``Learned``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import replace

from function import rules
from function.deadline import DEFAULT_SECONDS, Clock, Deadline
from function.events import Event, MalformedEvent, parse_payload
from function.index.digests import DigestIndex, Location
from function.index.image import Image
from function.index.nesting import descendants
from function.index.resolve import TooManyDescendants, fetch_tree
from function.index.source import IndexSource, IndexUnavailable
from function.learned import Learned
from function.reference import normalize_prefix
from function.registry.client import (
    HostNotAllowed,
    ManifestNotFound,
    ManifestSource,
    RegistryError,
    UnreadableManifest,
)
from function.registry.content import Facts, Manifest
from function.settings import DEFAULT_PARENT_WAIT_SECONDS
from function.signatures import SigningPolicy, check
from function.verdict import IndexRef, Kind, Reason, Verdict

log = logging.getLogger(__name__)

PARENT_NOT_YET_PUSHED = "parent not yet pushed"
# Registry requests one true miss may spend looking for the image's still-unresolved lists; the rest
# waits for the next delivery, so one event never floods a registry.
MAX_PARENT_FETCHES = 100
# Reasons the registry may overturn: the digest may be a child of a listed list the index has not
# resolved yet, or an OCI referrer of something promoted. A tag mismatch is settled by the index: the
# digest it names is listed (or a known child) and the tag is not among those promoted with it.
_RESOLVABLE = frozenset({Reason.UNKNOWN_DIGEST, Reason.ORPHAN_ARTIFACT})
# Never held back for a sync: no commit of the manifests can make a deletion or a frozen write right.
_NOT_HELD_BACK = frozenset({Reason.DELETION, Reason.FROZEN})
# What a manifest the registry serves but no reader understands counts as: nothing it claims to be.
_UNREADABLE = Facts(is_index=False, runnable=True, subject=None, cosign_kind=None)
INDEX_BEHIND = "index behind"


class Undecided(Exception):
    """The decision is open because a dependency failed; the event must be redelivered.

    ``reason`` is the verdict line's short reason; the message carries the details."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Auditor:
    def __init__(
        self,
        source: IndexSource,
        registry: ManifestSource | None = None,
        *,
        learned: Learned | None = None,
        frozen_prefixes: Iterable[str] = (),
        deadline_seconds: float = DEFAULT_SECONDS,
        clock: Clock = time.monotonic,
        max_parent_fetches: int = MAX_PARENT_FETCHES,
        parent_wait_seconds: float = DEFAULT_PARENT_WAIT_SECONDS,
        wall: Clock = time.time,
        signing: SigningPolicy | None = None,
    ) -> None:
        self.source = source
        self.registry = registry
        self.learned = learned or Learned()
        self.frozen_prefixes = tuple(normalize_prefix(prefix) for prefix in frozen_prefixes)
        self.deadline_seconds = deadline_seconds
        self.clock = clock
        self.max_parent_fetches = max_parent_fetches
        # 0 never waits (the sweep: a complete listing decides).
        self.parent_wait_seconds = parent_wait_seconds
        self.wall = wall
        self._signing = signing

    @property
    def signing(self) -> SigningPolicy:
        """Whose signatures count; the promoter's under the public-good root unless configured."""
        return self._signing or SigningPolicy.default()

    def audit_payload(
        self, raw: bytes | str, *, deadline: Deadline | None = None, published_at: float | None = None
    ) -> Verdict:
        """Decide one payload; ``deadline`` (default: ``deadline_seconds`` from now) bounds the decision, and
        ``published_at`` (wall-clock epoch seconds; default: now) starts the wait for a list not yet pushed."""
        deadline = deadline or Deadline(self.deadline_seconds, self.clock)
        published_at = self.wall() if published_at is None else published_at
        try:
            event = parse_payload(raw)
        except MalformedEvent as error:
            return rules.malformed(error)
        return self.audit(event, deadline=deadline, published_at=published_at)

    def audit(self, event: Event, *, deadline: Deadline | None = None, published_at: float | None = None) -> Verdict:
        deadline = deadline or Deadline(self.deadline_seconds, self.clock)
        return _Decision(self, event, deadline, self.wall() if published_at is None else published_at).run()

    def left_open(self, raw: bytes | str, reason: str, message: str) -> Verdict:
        """RETRY for a payload that could not be decided at all (MALFORMED where it is not even an event,
        REJECTED where it is under a frozen prefix: neither needs anything to be decided)."""
        try:
            event = parse_payload(raw)
        except MalformedEvent as error:
            return rules.malformed(error)
        return rules.frozen(event, self.frozen_prefixes) or rules.retry(event, reason, message)


class _Decision:
    """One event's way to its verdict: its deadline, the index it is judged by, and what its tag pointed at
    (tags move, so that is known only while this event is decided)."""

    def __init__(self, auditor: Auditor, event: Event, deadline: Deadline, published_at: float) -> None:
        self.auditor = auditor
        self.published_at = published_at
        self.learned = auditor.learned
        self.event = event
        self.deadline = deadline
        self.tag_digest: str | None = None
        self.index: DigestIndex | None = None
        self.location: Location | None = None
        # Manifests read for this event, kept while it is decided: a signature's layers come from them.
        self.manifests: dict[str, Manifest] = {}

    def run(self) -> Verdict:
        registry = self.auditor.registry
        calls_before = registry.calls if registry is not None else 0
        try:
            verdict = self._decide()
        except (Undecided, IndexUnavailable, RegistryError) as error:
            verdict = self._open(error)
        calls = (registry.calls if registry is not None else 0) - calls_before
        index = IndexRef(self.index.source.commit, self.index.generation) if self.index is not None else None
        return replace(verdict, registry_calls=calls, index=index)

    def _decide(self) -> Verdict:
        event, source = self.event, self.auditor.source
        self._judge_by(source.current(self.deadline))
        frozen = rules.frozen(event, self.auditor.frozen_prefixes, self._image_name())
        if frozen is not None:
            return frozen
        verdict = self._judge()
        if verdict.verdict == Kind.REJECTED and verdict.reason != Reason.DELETION:
            fresher = source.fresher(self.deadline)
            if fresher is not None:
                self._judge_by(fresher)
                verdict = self._judge()
        if verdict.verdict == Kind.REJECTED and verdict.reason in _RESOLVABLE and self.auditor.registry is not None:
            verdict = self._from_registry(verdict)
        if verdict.verdict == Kind.REJECTED and verdict.reason not in _NOT_HELD_BACK:
            waiting = source.behind(self.deadline)
            if waiting is not None:
                raise Undecided(INDEX_BEHIND, waiting)
        return verdict

    def _open(self, error: Exception) -> Verdict:
        """RETRY for a decision a fault left open; where no index could be had, a frozen path is still
        REJECTED, as it needs none."""
        event = self.event
        if isinstance(error, IndexUnavailable) and self.index is None:
            frozen = rules.frozen(event, self.auditor.frozen_prefixes)
            message = f"No index to decide with, the message will be redelivered: {error}"
            return frozen or rules.retry(event, error.reason, message)
        late = self.deadline.expired
        return rules.retry(
            event,
            "deadline exceeded" if late else _short_reason(error),
            ("The decision's deadline passed" if late else "Decision left open")
            + f", the message will be redelivered: {error}",
            image=self._image_name(),
        )

    def _judge_by(self, index: DigestIndex) -> None:
        self.index = index
        self.location = index.locate(self.event.path)

    def _image(self) -> Image | None:
        return self.location.image if self.location is not None else None

    def _image_name(self) -> str | None:
        image = self._image()
        return image.name if image is not None else None

    def _judge(self) -> Verdict:
        """The rules' verdict, fetching what they ask for (a tag's digest, an artifact's content) first."""
        while True:
            outcome = rules.judge(self.event, self.location, self.learned, self.tag_digest)
            if isinstance(outcome, Verdict):
                return outcome
            if isinstance(outcome, rules.NeedTag):
                self.tag_digest = self._resolve_tag(outcome.with_content)
            else:
                self._need(outcome)

    def _need(self, need: rules.NeedFacts | rules.NeedSignature) -> None:
        """Fetch what a rule asks for: a manifest's facts, or a signature's verification."""
        if isinstance(need, rules.NeedSignature):
            self._check_signature(need)
        elif self._facts_of(need.digest) is None:
            raise Undecided(
                "manifest not found", f"{self.event.path}@{need.digest} is not (yet) readable from the registry"
            )

    # --- the registry ------------------------------------------------------------------------------

    def _registry(self) -> ManifestSource:
        registry = self.auditor.registry
        if registry is None:
            raise Undecided("no registry client", f"deciding on {self.event.path} needs a registry client")
        if self.deadline.expired:
            raise Undecided(
                "deadline exceeded",
                f"deciding on {self.event.path} took longer than {self.auditor.deadline_seconds:g} s",
            )
        return registry

    def _resolve_tag(self, with_content: bool) -> str:
        registry = self._registry()
        host, _, repository = self.event.path.partition("/")
        tag = self.event.tag or ""
        if not with_content:
            return registry.resolve_tag(host, repository, tag, deadline=self.deadline)
        manifest = registry.get_manifest(host, repository, tag, deadline=self.deadline)
        self.learned.remember_facts(manifest.digest, manifest.facts)
        self.manifests[manifest.digest] = manifest
        return manifest.digest

    def _facts_of(self, digest: str) -> Facts | None:
        """What the manifest ``digest`` at the event's path is (remembered); None when it is not there."""
        facts = self.learned.facts(digest)
        if facts is not None:
            return facts
        registry = self._registry()
        host, _, repository = self.event.path.partition("/")
        try:
            manifest = registry.get_manifest(host, repository, digest, deadline=self.deadline)
        except ManifestNotFound:
            return None
        except UnreadableManifest as error:
            # Verified bytes that are no manifest: asking again cannot help, and they are no artifact.
            log.warning("%s", error)
            self.learned.remember_facts(digest, _UNREADABLE)
            return _UNREADABLE
        self.manifests[digest] = manifest
        self.learned.remember_facts(digest, manifest.facts)
        return manifest.facts

    def _check_signature(self, need: rules.NeedSignature) -> None:
        """Verify the signature the rules ask about from its layers (its manifest read again only when this
        decision has not read it: its facts were remembered, its outcome not), and remember the outcome."""
        registry = self._registry()
        manifest = self.manifests.get(need.digest)
        if manifest is None:
            host, _, repository = self.event.path.partition("/")
            try:
                manifest = registry.get_manifest(host, repository, need.digest, deadline=self.deadline)
            except ManifestNotFound:
                raise Undecided(
                    "manifest not found", f"{self.event.path}@{need.digest} is not (yet) readable from the registry"
                ) from None
        try:
            outcome = check(
                registry, self.event.path, manifest, need.kind, need.subject, self.auditor.signing, self.deadline
            )
        except ManifestNotFound as error:
            # The registry holds the manifest but not one of its blobs: odd, and not the signer's doing.
            raise Undecided("signature layer not found", str(error)) from None
        self.learned.remember_signature(need.digest, need.subject, outcome)

    # --- true misses: the event's own image --------------------------------------------------------

    def _from_registry(self, verdict: Verdict) -> Verdict:
        image, event = self._image(), self.event
        if image is None:
            return verdict
        resolved, nowhere = self._resolve_parents(image)
        if resolved:
            verdict = self._judge()
            if verdict.verdict != Kind.REJECTED:
                return verdict
        if event.tag is None and event.digest is not None:
            # Untagged: a referrer, if it names a subject.
            facts = self._facts_of(event.digest)
            if facts is not None and facts.subject is not None:
                return self._referrer(image, event.digest, facts)
        if nowhere:
            return self._without(verdict, image, nowhere)
        return verdict

    def _referrer(self, image: Image, digest: str, facts: Facts) -> Verdict:
        while True:
            outcome = rules.referrer(self.event, image, digest, facts, self.learned)
            if isinstance(outcome, Verdict):
                return outcome
            self._need(outcome)

    def _without(self, verdict: Verdict, image: Image, nowhere: list[str]) -> Verdict:
        """``verdict`` once the listed digests ``nowhere`` are given up on; until then (an untagged push, or a
        tag one of them carries, within ``parent_wait_seconds`` of its publication) the event waits."""
        tag, wait = self.event.tag, self.auditor.parent_wait_seconds
        named = ", ".join(nowhere[:3]) + (f" and {len(nowhere) - 3} more" if len(nowhere) > 3 else "")
        waited = max(0.0, self.auditor.wall() - self.published_at)
        may_wait = tag is None or any(tag in (image.tags_of(d) or ()) for d in nowhere)
        if may_wait and waited < wait:
            raise Undecided(
                PARENT_NOT_YET_PUSHED,
                f"{len(nowhere)} listed digests of {image.name} ({named}) are in none of its repositories yet, "
                f"and this may be a platform child pushed before its list; it waits {wait - waited:.0f}s more "
                "at most, then is decided without them",
            )
        why = f"after {waited:.0f}s" if may_wait else "and a tag none of them carries does not wait"
        return replace(
            verdict,
            message=f"{verdict.message} Listed digests of {image.name} are in none of its repositories ({named}), "
            f"{why}: decided without them.",
        )

    def _resolve_parents(self, image: Image) -> tuple[bool, list[str]]:
        """Look for this image's still-unresolved listed digests at the event's path, the image's other
        destinations and its staging repository, and remember what they are.

        Returns whether any was resolved, and the digests found nowhere (not remembered: a list pushed
        after its children is found by the redelivery)."""
        pending = self.learned.unresolved_of(image)
        if not pending:
            return False, []
        assert self.index is not None
        registry = self._registry()
        paths = list(dict.fromkeys([self.event.path, *self.index.sources_of(image)]))
        budget = registry.calls + self.auditor.max_parent_fetches
        resolved, nowhere = False, []
        for digest in pending:
            if registry.calls >= budget:
                raise Undecided(
                    "parents still unresolved",
                    f"{len(pending)} listed digests of {image.name} are still unresolved (run sync_index); "
                    "resolution continues on redelivery",
                )
            self._registry()  # the deadline, between fetches
            try:
                tree = fetch_tree(registry, digest, paths, deadline=self.deadline)
            except UnreadableManifest as error:
                # A listed digest no reader understands has no children this auditor could vouch for.
                log.warning("%s", error)
                self.learned.remember_children(digest, ())
                continue
            except TooManyDescendants as error:
                # Its descendants past the bound are no children this auditor vouches for: an alarm, not a pass.
                log.warning("%s", error)
                tree = error.found
            if tree is None:
                nowhere.append(digest)
                continue
            self.learned.remember_children(digest, descendants(tree.children, digest) or ())
            resolved = True
        return resolved, nowhere


def _short_reason(error: Exception) -> str:
    if isinstance(error, Undecided | IndexUnavailable):
        return error.reason
    if isinstance(error, HostNotAllowed):
        return "registry host not allowed"
    if isinstance(error, UnreadableManifest):
        return "unreadable manifest"
    return "registry unavailable"
