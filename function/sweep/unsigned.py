"""Which promoted digests the sweep requires to be signed (CONTRACT.md, Signatures): those listed in an
image under ``AUDITOR_SIGNING_REGISTRY`` and uploaded at or after ``AUDITOR_SIGNED_SINCE`` (unknown upload
times count), except platform children and the architecture-suffixed images the promoter does not sign.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from function.reference import prefix_over
from function.settings import Settings

# The images promo-tools' `kpromo sigcheck` leaves out because the promoter does not sign them
# (kubernetes-sigs/promo-tools internal/promoter/image/signcheck.go: "We ignore the -arch repositories as
# the promoter currently ignores them and does not sign them").
UNSIGNED_SUFFIXES = ("-amd64", "-arm", "-arm64", "-ppc64le", "-s390x")


@dataclass(frozen=True, slots=True)
class SigningRequirement:
    """``registry``: the prefix (spelled as event paths are) where every promoted image is signed, empty
    for none; ``since``: uploads before it need no signature."""

    registry: str = ""
    since: dt.datetime | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SigningRequirement:
        return cls(settings.signing_registry, settings.signed_since)

    def applies_to(self, path: str) -> bool:
        """Whether the repository at ``path`` must hold a `.sig` for each of its promoted digests."""
        return (
            bool(self.registry)
            and prefix_over(path, (self.registry,)) is not None
            and not path.endswith(UNSIGNED_SUFFIXES)
        )

    def requires(self, uploaded: dt.datetime | None) -> bool:
        """Whether a digest uploaded at ``uploaded`` (None: unknown) must be signed."""
        return self.since is None or uploaded is None or uploaded >= self.since
