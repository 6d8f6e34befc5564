"""Who may sign: AUDITOR_SIGNERS, comma-separated IDENTITY=ISSUER pairs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_SIGNERS = "krel-trust@k8s-releng-prod.iam.gserviceaccount.com=https://accounts.google.com"

# Identities are emails or URIs and may hold '=' (a URI's query), issuers are always http(s) URLs: so a pair
# splits at the first '=' that is followed by "https://" or "http://". An identity that itself contains
# "=https://" cannot be written; no Fulcio identity does.
_PAIR = re.compile(r"(?P<identity>.+?)=(?P<issuer>https?://\S+)")


class SignersError(ValueError):
    """AUDITOR_SIGNERS cannot be read; the message says what to fix."""


@dataclass(frozen=True)
class Signer:
    """A keyless signer: the certificate's subject alternative name and its Fulcio OIDC issuer."""

    identity: str
    issuer: str

    def __str__(self) -> str:
        return f"{self.identity}={self.issuer}"


def parse_signers(value: str) -> tuple[Signer, ...]:
    """Read AUDITOR_SIGNERS; whitespace around pairs is ignored, an empty pair or an empty value is an error."""
    pieces = [piece.strip() for piece in value.split(",")]
    if pieces == [""]:
        raise SignersError(
            "AUDITOR_SIGNERS is empty: no signature could ever verify; set it to IDENTITY=ISSUER pairs "
            f"or unset it for the default {DEFAULT_SIGNERS}"
        )
    signers = []
    for piece in pieces:
        match = _PAIR.fullmatch(piece)
        if match is None:
            raise SignersError(
                f"AUDITOR_SIGNERS holds {piece!r}, which is not IDENTITY=ISSUER with an http(s) issuer URL "
                f"(example: {DEFAULT_SIGNERS}; pairs are separated by commas)"
            )
        signers.append(Signer(match["identity"], match["issuer"]))
    return tuple(signers)


def matching(signers: Iterable[Signer], identities: Iterable[str], issuer: str | None) -> Signer | None:
    """The first signer whose identity is one of the certificate's and whose issuer is the certificate's."""
    names = set(identities)
    return next((s for s in signers if s.identity in names and s.issuer == issuer), None)
