"""The decision: one registry event in, one verdict out.

Every promoted image and platform child is decided from the digest index alone. Signatures,
attestations, SBOMs and referrers are judged by their content too (one registry call per distinct
manifest, then remembered), and only an event the index would reject (a possible alarm) goes further:
first a fresher index is looked for, then, for a true miss, the registry is asked about the event's own
image only. A fault on that path, or the decision's deadline passing, leaves the decision open (RETRY);
neither is ever turned into an alarm.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from function import verdict as v
from function.bounded import LruCache
from function.deadline import DEFAULT_SECONDS, Clock, Deadline
from function.events import Event, MalformedEvent, parse_payload
from function.index.digests import DigestIndex, Image
from function.index.resolve import fetch_first
from function.reference import artifact_subject, normalize_prefix, prefix_over, referrers_subject
from function.registry.client import (
    HostNotAllowed,
    ManifestNotFound,
    ManifestSource,
    RegistryError,
    UnreadableManifest,
)
from function.registry.content import Facts
from function.verdict import Verdict

log = logging.getLogger(__name__)

# Registry requests one true miss may spend looking for the image's still-unresolved lists; the rest
# waits for the next delivery, so one event never floods a registry.
MAX_PARENT_FETCHES = 100
# Facts of manifests fetched for events, by digest: about 400 bytes each, so 20 MB at most; enough for
# every signature, attestation and referrer of a re-signing of all of k8s.io's promoted digests.
MAX_REMEMBERED = 50_000
# Reasons the registry may overturn: the digest may be a child of a listed list the index has not
# resolved yet, or an OCI referrer of something promoted. A tag mismatch is settled by the index: the
# digest it names is listed (or a known child) and the tag is not among those promoted with it.
_RESOLVABLE = frozenset({"unknown_digest", "orphan_artifact"})
# What a manifest the registry serves but no reader understands counts as: nothing it claims to be.
_UNREADABLE = Facts(is_index=False, runnable=True, subject=None, cosign_kind=None)


class Undecided(Exception):
    """The decision is open because a dependency failed; the event must be redelivered.

    ``reason`` is the verdict line's short reason; the message carries the details."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


# Returns a newer index than the one in use, or None when the one in use is current.
Refresh = Callable[[], DigestIndex | None]
# Returns why the index in use is behind a k8s.io commit that is being synced (a would-be REJECTED must
# wait for it), or None.
Behind = Callable[[], str | None]
INDEX_BEHIND = "index behind"
# Never held back for a sync: no commit of the manifests can make a deletion or a frozen write right.
_NOT_HELD_BACK = frozenset({"deletion", "frozen"})


class Auditor:
    def __init__(
        self,
        index: DigestIndex,
        registry: ManifestSource | None = None,
        *,
        refresh: Refresh | None = None,
        behind: Behind | None = None,
        frozen_prefixes: Iterable[str] = (),
        deadline_seconds: float = DEFAULT_SECONDS,
        clock: Clock = time.monotonic,
        max_parent_fetches: int = MAX_PARENT_FETCHES,
    ) -> None:
        self.index = index
        self.registry = registry
        self.refresh = refresh
        self.behind = behind
        self.frozen_prefixes = tuple(normalize_prefix(prefix) for prefix in frozen_prefixes)
        self.deadline_seconds = deadline_seconds
        self.clock = clock
        self.max_parent_fetches = max_parent_fetches
        # Content under a digest is the same everywhere and forever, so what it is can be remembered.
        self._facts: LruCache[str, Facts] = LruCache(MAX_REMEMBERED)
        # What one decision knows and no other: its deadline, and what a tag pointed at (tags move, so
        # that is remembered only while its own event is being decided). Per thread, so that decisions
        # may run side by side (the sweep's hosts).
        self._decision = threading.local()

    def audit_payload(self, raw: bytes | str, *, deadline: Deadline | None = None) -> Verdict:
        """Decide one payload; ``deadline`` (default: ``deadline_seconds`` from now) bounds the decision."""
        deadline = deadline or Deadline(self.deadline_seconds, self.clock)
        try:
            event = parse_payload(raw)
        except MalformedEvent as error:
            return malformed(error)
        return self.audit(event, deadline=deadline)

    def audit(self, event: Event, *, deadline: Deadline | None = None) -> Verdict:
        self._decision.deadline = deadline or Deadline(self.deadline_seconds, self.clock)
        self._decision.tag_digests = {}
        calls_before = self._calls()
        try:
            verdict = self._decide(event)
        except (Undecided, RegistryError) as error:
            location = self.index.locate(event.path)
            late = self._deadline.expired
            verdict = _verdict(
                event,
                v.RETRY,
                ("The decision's deadline passed" if late else "Decision left open")
                + f", the message will be redelivered: {error}",
                reason="deadline exceeded" if late else _short_reason(error),
                image=location.image.name if location is not None and location.image is not None else None,
            )
        index = v.IndexRef(self.index.source.commit, self.index.generation)
        return replace(verdict, registry_calls=self._calls() - calls_before, index=index)

    def _calls(self) -> int:
        return self.registry.calls if self.registry is not None else 0

    @property
    def _deadline(self) -> Deadline:
        deadline: Deadline = self._decision.deadline
        return deadline

    @property
    def _tag_digests(self) -> dict[Event, str]:
        digests: dict[Event, str] = self._decision.tag_digests
        return digests

    def _decide(self, event: Event) -> Verdict:
        frozen = self._frozen(event)
        if frozen is not None:
            return frozen
        verdict = self._judge(event)
        if verdict.verdict == v.REJECTED and verdict.reason != "deletion" and self.refresh is not None:
            fresher = self.refresh()
            if fresher is not None:
                self.index = fresher
                verdict = self._judge(event)
        if verdict.verdict == v.REJECTED and verdict.reason in _RESOLVABLE and self.registry is not None:
            verdict = self._from_registry(event, verdict)
        if verdict.verdict == v.REJECTED and verdict.reason not in _NOT_HELD_BACK and self.behind is not None:
            waiting = self.behind()
            if waiting is not None:
                raise Undecided(INDEX_BEHIND, waiting)
        return verdict

    def _frozen(self, event: Event) -> Verdict | None:
        # The index is looked at only for the rare frozen path's image name: every other event locates
        # its path once, in _judge.
        if prefix_over(event.path, self.frozen_prefixes) is None:
            return None
        location = self.index.locate(event.path)
        return frozen(event, self.frozen_prefixes, location.image.name if location and location.image else None)

    def _check_deadline(self, event: Event) -> None:
        if self._deadline.expired:
            raise Undecided(
                "deadline exceeded", f"deciding on {event.path} took longer than {self.deadline_seconds:g} s"
            )

    # --- from the index, and the content of artifacts -----------------------------------------

    def _judge(self, event: Event) -> Verdict:
        location = self.index.locate(event.path)
        if location is None:
            return _verdict(
                event, v.IGNORED, f"{event.path} is not under any destination registry.", reason="not_audited"
            )
        image = location.image
        name = image.name if image is not None else None
        if event.action == "DELETE":
            what = f"{event.path}@{event.digest}" if event.digest else f"{event.path}:{event.tag}"
            return _verdict(
                event, v.REJECTED, f"{what} was deleted from a production registry.", reason="deletion", image=name
            )
        if image is None:
            return _verdict(
                event,
                v.REJECTED,
                f"No promoted image is named {event.path} (destination {location.destination}).",
                reason="unknown_image",
            )
        if event.digest is None:
            orphan = self._orphan(event, image)
            return orphan if orphan is not None else self._resolve_tag(event, image)
        return self._digest(event, image, event.digest)

    def _digest(self, event: Event, image: Image, digest: str) -> Verdict:
        tag = event.tag
        tags = image.tags_of(digest)
        if tags is not None and (tag is None or tag in tags):
            return _verdict(
                event,
                v.VERIFIED,
                f"{digest} is promoted as {image.name}{_tag_text(tags)}.",
                basis="listed",
                image=image.name,
            )
        parents = image.parents_of(digest)
        parent = next((p for p in parents if tag is None or tag in (image.tags_of(p) or ())), None)
        if parent is not None:
            return _verdict(
                event,
                v.VERIFIED,
                f"{digest} is a platform child of {image.name} {parent}.",
                basis="child",
                image=image.name,
                parent=parent,
            )
        named = _artifact_tag(tag) if tag is not None else None
        if named is not None:
            return self._orphan(event, image) or self._tagged_artifact(event, image, digest, *named)
        if tags is not None or parents:
            return _verdict(
                event,
                v.REJECTED,
                f"{digest} is promoted as {image.name} but not with tag {tag}.",
                reason="tag_mismatch",
                image=image.name,
            )
        return _verdict(
            event, v.REJECTED, f"{digest} is not promoted as {image.name}.", reason="unknown_digest", image=image.name
        )

    def _orphan(self, event: Event, image: Image) -> Verdict | None:
        """REJECTED for a signature, attestation, SBOM or referrers tag whose subject is not promoted
        here (decided from the tag alone); None for any other tag, or a promoted subject."""
        named = _artifact_tag(event.tag or "")
        if named is None or image.promotes(named[0]):
            return None
        subject, basis = named
        return _verdict(
            event,
            v.REJECTED,
            f"{event.tag} is a {basis} for {subject}, which is not promoted as {image.name}.",
            reason="orphan_artifact",
            image=image.name,
        )

    def _tagged_artifact(self, event: Event, image: Image, digest: str, subject: str, basis: str) -> Verdict:
        """A `sha256-<hex>.sig|.att|.sbom` or referrers fallback tag of a promoted subject: VERIFIED only
        when the manifest is the artifact the tag names."""
        facts = self._facts_of(event, digest)
        if facts is None:
            raise Undecided("manifest not found", f"{event.path}@{digest} is not (yet) readable from the registry")
        if basis == "referrer":
            fits = facts.is_index and facts.artifact
            claim = "an image index of artifacts, as the referrers fallback tag holds"
        else:
            fits = facts.cosign_kind == (event.tag or "").rpartition(".")[2]
            claim = f"a cosign {basis} (layers of its media type)"
        if not fits:
            return _verdict(
                event,
                v.REJECTED,
                f"{event.tag} should be {claim} of {image.name} {subject}, but {digest} is not.",
                reason="bad_artifact",
                image=image.name,
            )
        return _verdict(
            event, v.VERIFIED, f"{event.tag} is the {basis} of {image.name} {subject}.", basis=basis, image=image.name
        )

    def _resolve_tag(self, event: Event, image: Image) -> Verdict:
        registry = self._registry(event)
        digest = self._tag_digests.get(event)
        if digest is None:
            host, _, repository = event.path.partition("/")
            tag = event.tag or ""
            if _artifact_tag(tag) is None:
                digest = registry.resolve_tag(host, repository, tag, deadline=self._deadline)
            else:
                # Its content decides anyway: one GET names the digest and tells what the manifest is.
                manifest = registry.get_manifest(host, repository, tag, deadline=self._deadline)
                digest = manifest.digest
                self._facts.put(digest, manifest.facts)
            self._tag_digests[event] = digest
        verdict = self._digest(event, image, digest)
        return replace(verdict, message=f"{event.tag} is {digest}: {verdict.message}")

    def _registry(self, event: Event) -> ManifestSource:
        if self.registry is None:
            raise Undecided("no registry client", f"deciding on {event.path} needs a registry client")
        self._check_deadline(event)
        return self.registry

    def _facts_of(self, event: Event, digest: str) -> Facts | None:
        """What the manifest ``digest`` at the event's path is (remembered); None when it is not there."""
        facts = self._facts.get(digest)
        if facts is not None:
            return facts
        registry = self._registry(event)
        host, _, repository = event.path.partition("/")
        try:
            facts = registry.get_manifest(host, repository, digest, deadline=self._deadline).facts
        except ManifestNotFound:
            return None
        except UnreadableManifest as error:
            # Verified bytes that are no manifest: asking again cannot help, and they are no artifact.
            log.warning("%s", error)
            facts = _UNREADABLE
        self._facts.put(digest, facts)
        return facts

    # --- true misses: the event's own image ------------------------------------------------------

    def _from_registry(self, event: Event, verdict: Verdict) -> Verdict:
        location = self.index.locate(event.path)
        if location is None or location.image is None:
            return verdict
        image = location.image
        resolved, nowhere = self._resolve_parents(event, image)
        if resolved:
            verdict = self._judge(event)
            if verdict.verdict != v.REJECTED:
                return verdict
        if event.tag is None and event.digest is not None:
            # Untagged: a referrer, if it names a subject.
            facts = self._facts_of(event, event.digest)
            if facts is not None and facts.subject is not None:
                return self._referrer(event, image, event.digest, facts)
        if nowhere:
            raise Undecided(
                "parent not yet pushed",
                f"{len(nowhere)} listed digests of {image.name} ({', '.join(nowhere[:3])}) are in none of its "
                "repositories yet, and this may be a platform child pushed before its list; a list that never "
                "arrives leaves the message in the dead-letter queue",
            )
        return verdict

    def _referrer(self, event: Event, image: Image, digest: str, facts: Facts) -> Verdict:
        """An untagged manifest with a `subject`: a referrer when it is an artifact of something promoted."""
        subject = facts.subject
        if not image.promotes(subject or ""):
            return _verdict(
                event,
                v.REJECTED,
                f"{digest} refers to {subject}, which is not promoted as {image.name}.",
                reason="orphan_artifact",
                image=image.name,
            )
        if facts.runnable:
            return _verdict(
                event,
                v.REJECTED,
                f"{digest} names {image.name} {subject} as its subject but is a runnable image, not an artifact.",
                reason="bad_artifact",
                image=image.name,
            )
        return _verdict(
            event,
            v.VERIFIED,
            f"{digest} is an OCI referrer of {image.name} {subject}.",
            basis="referrer",
            image=image.name,
        )

    def _resolve_parents(self, event: Event, image: Image) -> tuple[bool, list[str]]:
        """Look for this image's still-unresolved listed digests at the event's path, the image's other
        destinations and its staging repository, and record what they are.

        Returns whether any was resolved, and the digests found nowhere (not remembered: a list pushed
        after its children is found by the redelivery)."""
        pending = self.index.unresolved_of(image)
        if not pending:
            return False, []
        registry = self._registry(event)
        paths = list(dict.fromkeys([event.path, *self.index.sources_of(image)]))
        budget = registry.calls + self.max_parent_fetches
        resolved, nowhere = False, []
        for digest in pending:
            if registry.calls >= budget:
                raise Undecided(
                    "parents still unresolved",
                    f"{len(pending)} listed digests of {image.name} are still unresolved (run sync_index); "
                    "resolution continues on redelivery",
                )
            self._check_deadline(event)
            try:
                manifest = fetch_first(registry, digest, paths, deadline=self._deadline)
            except UnreadableManifest as error:
                # A listed digest no reader understands has no children this auditor could vouch for.
                log.warning("%s", error)
                self.index.record(digest, ())
                continue
            if manifest is None:
                nowhere.append(digest)
                continue
            self.index.record(digest, manifest.children if manifest.is_index else ())
            resolved = True
        return resolved, nowhere


def frozen(event: Event, prefixes: Iterable[str], image: str | None = None) -> Verdict | None:
    """REJECTED for any change under one of the (normalized) frozen ``prefixes``, else None.

    Decided before anything else and without any I/O, not even the index: a frozen registry must never
    change, whatever the manifests say."""
    prefix = prefix_over(event.path, prefixes)
    if prefix is None:
        return None
    what = f"{event.path}@{event.digest}" if event.digest else f"{event.path}:{event.tag}"
    return _verdict(
        event,
        v.REJECTED,
        f"{event.action} of {what} under {prefix}, a frozen registry that must never change.",
        reason="frozen",
        image=image,
    )


def without_index(raw: bytes | str, detail: str, *, frozen_prefixes: Iterable[str] = ()) -> Verdict:
    """The verdict for a payload when no index could be read: MALFORMED and `frozen` need none, all else
    waits. ``frozen_prefixes`` are normalized ones (`Auditor.frozen_prefixes`)."""
    return undecided(
        raw,
        "index unavailable",
        f"No index to decide with, the message will be redelivered: {detail}",
        frozen_prefixes=frozen_prefixes,
    )


def undecided(raw: bytes | str, reason: str, message: str, *, frozen_prefixes: Iterable[str] = ()) -> Verdict:
    """RETRY for a payload that could not be decided at all (MALFORMED where it is not even an event,
    REJECTED where it is under a frozen prefix)."""
    try:
        event = parse_payload(raw)
    except MalformedEvent as error:
        return malformed(error)
    return frozen(event, frozen_prefixes) or _verdict(event, v.RETRY, message, reason=reason)


def malformed(error: MalformedEvent) -> Verdict:
    return Verdict(
        v.MALFORMED,
        f"The message is not a registry event: {error.reason}.",
        reason=error.reason,
        action=error.action,
        path=error.path,
        digest=error.digest,
        tag=error.tag,
    )


def _verdict(event: Event, kind: str, message: str, **fields: Any) -> Verdict:
    """A verdict echoing the event's parsed fields."""
    return Verdict(kind, message, action=event.action, path=event.path, digest=event.digest, tag=event.tag, **fields)


def _tag_text(tags: list[str]) -> str:
    if not tags:
        return " (untagged)"
    shown = sorted(tags)
    return " with tag " + ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")


def _artifact_tag(tag: str) -> tuple[str, str] | None:
    """The subject and basis a signature, attestation, SBOM or referrers fallback tag names."""
    fallback = referrers_subject(tag)
    return (fallback, "referrer") if fallback is not None else artifact_subject(tag)


def _short_reason(error: Exception) -> str:
    if isinstance(error, Undecided):
        return error.reason
    if isinstance(error, HostNotAllowed):
        return "registry host not allowed"
    if isinstance(error, UnreadableManifest):
        return "unreadable manifest"
    return "registry unavailable"
