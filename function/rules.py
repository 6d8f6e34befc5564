"""The decision rules: an event, where its path falls in the index and what is known of its content, in;
a verdict, or what must be learned first, out. No I/O and no state: ``auditor.Auditor`` fetches what a
rule asks for (``NeedTag``, ``NeedFacts``, ``NeedSignature``) and asks again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from function.events import Event, MalformedEvent
from function.index.digests import Location
from function.index.image import Image
from function.learned import Learned
from function.reference import artifact_subject, prefix_over, referrers_subject
from function.registry.content import Facts
from function.signatures import SignedKind
from function.signing.results import Verified
from function.verdict import Basis, Kind, Reason, SignerRef, Verdict


@dataclass(frozen=True, slots=True)
class NeedTag:
    """The digest the event's tag points at; for a signature, attestation, SBOM or referrers tag the
    manifest itself (its content decides anyway, and one GET names the digest too)."""

    with_content: bool


@dataclass(frozen=True, slots=True)
class NeedFacts:
    """What the manifest ``digest`` at the event's path is."""

    digest: str


@dataclass(frozen=True, slots=True)
class NeedSignature:
    """Whether the manifest ``digest`` at the event's path (a `.sig`, `.att` or Sigstore-bundle referrer)
    holds a valid signature of ``subject``."""

    digest: str
    kind: SignedKind
    subject: str


Need = NeedTag | NeedFacts | NeedSignature


def judge(event: Event, location: Location | None, learned: Learned, tag_digest: str | None = None) -> Verdict | Need:
    """The verdict the index (and what the process learned) gives ``event``; ``tag_digest`` is what its
    tag points at, once known, for an event that names a tag only."""
    if location is None:
        return _verdict(
            event, Kind.IGNORED, f"{event.path} is not under any destination registry.", reason=Reason.NOT_AUDITED
        )
    image = location.image
    name = image.name if image is not None else None
    if event.action == "DELETE":
        return _verdict(
            event,
            Kind.REJECTED,
            f"{_what(event)} was deleted from a production registry.",
            reason=Reason.DELETION,
            image=name,
        )
    if image is None:
        return _verdict(
            event,
            Kind.REJECTED,
            f"No promoted image is named {event.path} (destination {location.destination}).",
            reason=Reason.UNKNOWN_IMAGE,
        )
    if event.digest is not None:
        return _digest(event, image, event.digest, learned)
    orphan = _orphan(event, image, learned)
    if orphan is not None:
        return orphan
    if tag_digest is None:
        return NeedTag(with_content=artifact_tag(event.tag or "") is not None)
    outcome = _digest(event, image, tag_digest, learned)
    if isinstance(outcome, Verdict):
        return replace(outcome, message=f"{event.tag} is {tag_digest}: {outcome.message}")
    return outcome


def referrer(
    event: Event, image: Image, digest: str, facts: Facts, learned: Learned
) -> Verdict | NeedFacts | NeedSignature:
    """An untagged manifest with a `subject`: a referrer when it is an artifact of something promoted (an
    index only when every entry's own manifest is one too; a Sigstore bundle only when its signature verifies)."""
    subject = facts.subject
    if not _promotes(learned, image, subject or ""):
        return _verdict(
            event,
            Kind.REJECTED,
            f"{digest} refers to {subject}, which is not promoted as {image.name}.",
            reason=Reason.ORPHAN_ARTIFACT,
            image=image.name,
        )
    entries = _artifact_entries(facts, learned)
    if isinstance(entries, NeedFacts):
        return entries
    if facts.runnable or not entries:
        return _verdict(
            event,
            Kind.REJECTED,
            f"{digest} names {image.name} {subject} as its subject but is a runnable image, not an artifact.",
            reason=Reason.BAD_ARTIFACT,
            image=image.name,
        )
    assert subject is not None  # promoted, so named
    verdict = _verdict(
        event,
        Kind.VERIFIED,
        f"{digest} is an OCI referrer of {image.name} {subject}.",
        basis=Basis.REFERRER,
        image=image.name,
    )
    if not facts.sigstore_bundle:
        return verdict
    return _signed(event, image, digest, subject, SignedKind.BUNDLE, learned, verdict, "Sigstore bundle")


def frozen(event: Event, prefixes: Iterable[str], image: str | None = None) -> Verdict | None:
    """REJECTED for any change under one of the (normalized) frozen ``prefixes``, else None: a frozen
    registry must never change, whatever the manifests say."""
    prefix = prefix_over(event.path, prefixes)
    if prefix is None:
        return None
    return _verdict(
        event,
        Kind.REJECTED,
        f"{event.action} of {_what(event)} under {prefix}, a frozen registry that must never change.",
        reason=Reason.FROZEN,
        image=image,
    )


def retry(event: Event, reason: str, message: str, *, image: str | None = None) -> Verdict:
    """The decision is open: the message is redelivered."""
    return _verdict(event, Kind.RETRY, message, reason=reason, image=image)


def malformed(error: MalformedEvent) -> Verdict:
    return Verdict(
        Kind.MALFORMED,
        f"The message is not a registry event: {error.reason}.",
        reason=error.reason,
        action=error.action,
        path=error.path,
        digest=error.digest,
        tag=error.tag,
    )


def artifact_tag(tag: str) -> tuple[str, str] | None:
    """The subject and basis a signature, attestation, SBOM or referrers fallback tag names."""
    fallback = referrers_subject(tag)
    return (fallback, Basis.REFERRER) if fallback is not None else artifact_subject(tag)


# --- from the index, and the content of artifacts ---------------------------------------------------


def _digest(event: Event, image: Image, digest: str, learned: Learned) -> Verdict | Need:
    tag = event.tag
    tags = image.tags_of(digest)
    if tags is not None and (tag is None or tag in tags):
        return _verdict(
            event,
            Kind.VERIFIED,
            f"{digest} is promoted as {image.name}{_tag_text(tags)}.",
            basis=Basis.LISTED,
            image=image.name,
        )
    parents = learned.parents_of(image, digest)
    parent = next((p for p in parents if tag is None or tag in (image.tags_of(p) or ())), None)
    if parent is not None:
        return _verdict(
            event,
            Kind.VERIFIED,
            f"{digest} is a platform child of {image.name} {parent}.",
            basis=Basis.CHILD,
            image=image.name,
            parent=parent,
        )
    named = artifact_tag(tag) if tag is not None else None
    if named is not None:
        return _orphan(event, image, learned) or _tagged_artifact(event, image, digest, *named, learned)
    if tags is not None or parents:
        return _verdict(
            event,
            Kind.REJECTED,
            f"{digest} is promoted as {image.name} but not with tag {tag}.",
            reason=Reason.TAG_MISMATCH,
            image=image.name,
        )
    return _verdict(
        event,
        Kind.REJECTED,
        f"{digest} is not promoted as {image.name}.",
        reason=Reason.UNKNOWN_DIGEST,
        image=image.name,
    )


def _orphan(event: Event, image: Image, learned: Learned) -> Verdict | None:
    """REJECTED for a signature, attestation, SBOM or referrers tag whose subject is not promoted here
    (decided from the tag alone); None for any other tag, or a promoted subject."""
    named = artifact_tag(event.tag or "")
    if named is None or _promotes(learned, image, named[0]):
        return None
    subject, basis = named
    return _verdict(
        event,
        Kind.REJECTED,
        f"{event.tag} is a {basis} for {subject}, which is not promoted as {image.name}.",
        reason=Reason.ORPHAN_ARTIFACT,
        image=image.name,
    )


def _tagged_artifact(
    event: Event, image: Image, digest: str, subject: str, basis: str, learned: Learned
) -> Verdict | Need:
    """A `sha256-<hex>.sig|.att|.sbom` or referrers fallback tag of a promoted subject: VERIFIED only
    when the manifest is the artifact the tag names."""
    facts = learned.facts(digest)
    if facts is None:
        return NeedFacts(digest)
    if basis == Basis.REFERRER:
        entries = _artifact_entries(facts, learned)
        if isinstance(entries, NeedFacts):
            return entries
        fits = facts.is_index and facts.artifact and entries
        claim = "an image index of artifacts, as the referrers fallback tag holds"
    else:
        fits = facts.cosign_kind == (event.tag or "").rpartition(".")[2]
        claim = f"a cosign {basis} (layers of its media type)"
    if not fits:
        return _verdict(
            event,
            Kind.REJECTED,
            f"{event.tag} should be {claim} of {image.name} {subject}, but {digest} is not.",
            reason=Reason.BAD_ARTIFACT,
            image=image.name,
        )
    verdict = _verdict(
        event,
        Kind.VERIFIED,
        f"{event.tag} is the {basis} of {image.name} {subject}.",
        basis=Basis(basis),
        image=image.name,
    )
    if basis not in (Basis.SIGNATURE, Basis.ATTESTATION):
        return verdict
    kind = SignedKind.SIGNATURE if basis == Basis.SIGNATURE else SignedKind.ATTESTATION
    return _signed(event, image, digest, subject, kind, learned, verdict, f"{event.tag} ({digest})")


def _signed(
    event: Event,
    image: Image,
    digest: str,
    subject: str,
    kind: SignedKind,
    learned: Learned,
    verified: Verdict,
    what: str,
) -> Verdict | NeedSignature:
    """``verified`` with its signer when the signature of ``digest`` over ``subject`` verifies; REJECTED
    ``bad_signature`` naming the first check that failed when it does not."""
    outcome = learned.signature(digest, subject)
    if outcome is None:
        return NeedSignature(digest, kind, subject)
    signer = SignerRef(outcome.identity, outcome.issuer, outcome.log_index)
    if isinstance(outcome, Verified):
        by = f" Signed by {outcome.identity} ({outcome.issuer}), Rekor log index {outcome.log_index}."
        # A verified bundle referrer keeps basis `referrer`, whose line carries no signer.
        return replace(
            verified,
            message=verified.message + by,
            signer=signer if kind is not SignedKind.BUNDLE else None,
        )
    claimed = f" (the certificate names {outcome.identity}, {outcome.issuer})" if outcome.identity else ""
    return _verdict(
        event,
        Kind.REJECTED,
        f"{what} of {image.name} {subject} does not verify{claimed}: the {outcome.message}.",
        reason=Reason.BAD_SIGNATURE,
        image=image.name,
        signer=signer,
    )


def _artifact_entries(facts: Facts, learned: Learned) -> bool | NeedFacts:
    """Whether every entry of an index is itself an artifact, judged by its own manifest (fetched first:
    a runtime pulls what an entry's manifest is, not what the index says of it); True for a single
    manifest."""
    if not facts.is_index or facts.runnable:
        return True
    for entry in facts.entries:
        known = learned.facts(entry)
        if known is None:
            return NeedFacts(entry)
        if known.is_index or known.runnable:
            return False
    return True


def _promotes(learned: Learned, image: Image, digest: str) -> bool:
    """Listed for ``image``, or a platform child of something listed for it."""
    return digest in image.digests or bool(learned.parents_of(image, digest))


def _verdict(event: Event, kind: Kind, message: str, **fields: Any) -> Verdict:
    """A verdict echoing the event's parsed fields."""
    return Verdict(kind, message, action=event.action, path=event.path, digest=event.digest, tag=event.tag, **fields)


def _what(event: Event) -> str:
    return f"{event.path}@{event.digest}" if event.digest else f"{event.path}:{event.tag}"


def _tag_text(tags: list[str]) -> str:
    if not tags:
        return " (untagged)"
    shown = sorted(tags)
    return " with tag " + ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")
