"""The decision: one registry event in, one verdict out.

Every promoted artifact is decided from the digest index alone. Only an event the index would reject
(a possible alarm) goes further: first a fresher index is looked for, then, for a true miss, the
registry is asked about the event's own repository only. A fault on that path leaves the decision
open (RETRY) and is never turned into an alarm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from function import verdict as v
from function.events import Event, MalformedEvent, parse_payload
from function.index.digests import DigestIndex, Image
from function.reference import artifact_subject
from function.registry.client import (
    HostNotAllowed,
    ManifestNotFound,
    ManifestSource,
    RegistryError,
    UnreadableManifest,
)
from function.registry.content import Manifest
from function.verdict import Verdict

log = logging.getLogger(__name__)

# A true miss resolves the image's still-unresolved lists at most this many at a time; the rest waits
# for the next delivery (the process keeps what it fetched), so one event never floods a registry.
MAX_PARENT_FETCHES = 100
# Reasons the registry may overturn: the digest may be a child of a listed list the index has not
# resolved yet, or an OCI referrer of something promoted. A tag mismatch is settled by the index: the
# digest it names is listed (or a known child) and the tag is not among those promoted with it.
_RESOLVABLE = frozenset({"unknown_digest", "orphan_artifact"})


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
        max_parent_fetches: int = MAX_PARENT_FETCHES,
    ) -> None:
        self.index = index
        self.registry = registry
        self.refresh = refresh
        self.behind = behind
        self.max_parent_fetches = max_parent_fetches
        # (path, digest) pairs the registry answered 404 for: asked once per process.
        self._absent: set[tuple[str, str]] = set()
        self._manifests: dict[str, Manifest] = {}
        # Tags move, so what a tag pointed at is remembered only while its own event is being decided.
        self._tag_digests: dict[Event, str] = {}

    def audit_payload(self, raw: bytes | str) -> Verdict:
        try:
            event = parse_payload(raw)
        except MalformedEvent as error:
            return malformed(error)
        return self.audit(event)

    def audit(self, event: Event) -> Verdict:
        calls_before = self._calls()
        self._tag_digests.clear()
        try:
            verdict = self._decide(event)
        except (Undecided, RegistryError) as error:
            location = self.index.locate(event.path)
            verdict = _verdict(
                event,
                v.RETRY,
                f"Decision left open, the message will be redelivered: {error}",
                reason=_short_reason(error),
                image=location.image.name if location is not None and location.image is not None else None,
            )
        index = v.IndexRef(self.index.source.commit, self.index.generation)
        return replace(verdict, registry_calls=self._calls() - calls_before, index=index)

    def _calls(self) -> int:
        return self.registry.calls if self.registry is not None else 0

    def _decide(self, event: Event) -> Verdict:
        verdict = self._from_index(event)
        if verdict.verdict == v.REJECTED and verdict.reason != "deletion" and self.refresh is not None:
            fresher = self.refresh()
            if fresher is not None:
                self.index = fresher
                verdict = self._from_index(event)
        if verdict.verdict == v.REJECTED and verdict.reason in _RESOLVABLE and self.registry is not None:
            verdict = self._from_registry(event, verdict)
        if verdict.verdict == v.REJECTED and verdict.reason not in _NOT_HELD_BACK and self.behind is not None:
            waiting = self.behind()
            if waiting is not None:
                raise Undecided(INDEX_BEHIND, waiting)
        return verdict

    # --- from the index alone -----------------------------------------------------------------

    def _from_index(self, event: Event) -> Verdict:
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
            subject = artifact_subject(event.tag or "")
            if subject is not None:
                return self._artifact(event, image, *subject)
            return self._resolve_tag(event, image)
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
        subject = artifact_subject(tag) if tag else None
        if subject is not None:
            return self._artifact(event, image, *subject)
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

    def _artifact(self, event: Event, image: Image, subject: str, basis: str) -> Verdict:
        if image.promotes(subject):
            return _verdict(
                event,
                v.VERIFIED,
                f"{event.tag} is the {basis} of {image.name} {subject}.",
                basis=basis,
                image=image.name,
            )
        return _verdict(
            event,
            v.REJECTED,
            f"{event.tag} is a {basis} for {subject}, which is not promoted as {image.name}.",
            reason="orphan_artifact",
            image=image.name,
        )

    def _resolve_tag(self, event: Event, image: Image) -> Verdict:
        if self.registry is None:
            raise Undecided("no registry client", f"resolving tag {event.tag} of {event.path} needs a registry client")
        digest = self._tag_digests.get(event)
        if digest is None:
            host, _, repository = event.path.partition("/")
            digest = self._tag_digests[event] = self.registry.resolve_tag(host, repository, event.tag or "")
        verdict = self._digest(event, image, digest)
        return replace(verdict, message=f"{event.tag} is {digest}: {verdict.message}")

    # --- true misses: the event's own repository ------------------------------------------------

    def _from_registry(self, event: Event, verdict: Verdict) -> Verdict:
        location = self.index.locate(event.path)
        if location is None or location.image is None:
            return verdict
        image = location.image
        resolved, remaining = self._resolve_parents(event.path, image)
        if resolved:
            verdict = self._from_index(event)
            if verdict.verdict != v.REJECTED:
                return verdict
        if remaining:
            raise Undecided(
                "parents still unresolved",
                f"{remaining} listed digests of {image.name} are still unresolved (run sync_index); "
                "resolution continues on redelivery",
            )
        if event.digest is None or artifact_subject(event.tag or "") is not None or verdict.reason != "unknown_digest":
            return verdict
        manifest = self._manifest(event.path, event.digest)
        if manifest is None or manifest.subject is None:
            return verdict
        if image.promotes(manifest.subject):
            return _verdict(
                event,
                v.VERIFIED,
                f"{event.digest} is an OCI referrer of {image.name} {manifest.subject}.",
                basis="referrer",
                image=image.name,
            )
        return _verdict(
            event,
            v.REJECTED,
            f"{event.digest} refers to {manifest.subject}, which is not promoted as {image.name}.",
            reason="orphan_artifact",
            image=image.name,
        )

    def _resolve_parents(self, path: str, image: Image) -> tuple[bool, int]:
        """Fetch this image's still-unresolved listed digests from ``path``.

        Returns whether any was resolved and how many are left for a later delivery."""
        pending = [d for d in self.index.unresolved_of(image) if (path, d) not in self._absent]
        resolved = False
        for digest in pending[: self.max_parent_fetches]:
            manifest = self._manifest(path, digest)
            if manifest is not None:
                self.index.record(digest, manifest.children if manifest.is_index else ())
                resolved = True
        return resolved, max(0, len(pending) - self.max_parent_fetches)

    def _manifest(self, path: str, digest: str) -> Manifest | None:
        """The manifest ``digest`` at ``path``, or None when that repository does not hold it."""
        if (path, digest) in self._absent:
            return None
        cached = self._manifests.get(digest)  # content under a digest is the same everywhere
        if cached is not None:
            return cached
        assert self.registry is not None
        host, _, repository = path.partition("/")
        try:
            manifest = self.registry.get_manifest(host, repository, digest)
        except (ManifestNotFound, UnreadableManifest) as error:
            # Verified bytes that are no manifest say as little as a 404, and asking again cannot help.
            if isinstance(error, UnreadableManifest):
                log.warning("%s", error)
            self._absent.add((path, digest))
            return None
        self._manifests[digest] = manifest
        return manifest


def without_index(raw: bytes | str, detail: str) -> Verdict:
    """The verdict for a payload when no index could be read: MALFORMED needs none, all else waits."""
    try:
        event = parse_payload(raw)
    except MalformedEvent as error:
        return malformed(error)
    return _verdict(
        event,
        v.RETRY,
        f"No index to decide with, the message will be redelivered: {detail}",
        reason="index unavailable",
    )


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


def _short_reason(error: Exception) -> str:
    if isinstance(error, Undecided):
        return error.reason
    if isinstance(error, HostNotAllowed):
        return "registry host not allowed"
    if isinstance(error, UnreadableManifest):
        return "unreadable manifest"
    return "registry unavailable"
