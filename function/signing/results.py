"""What a signature check concludes: which of the four checks failed, or who signed."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SignatureCheck(StrEnum):
    """The four checks a signature passes, in the order they are made."""

    PAYLOAD = "payload"
    SIGNATURE = "signature"
    CERTIFICATE = "certificate"
    TRANSPARENCY = "transparency"

    @property
    def description(self) -> str:
        """What the check establishes, in an operator's words."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    SignatureCheck.PAYLOAD: "the signed payload is intact and names the promoted digest",
    SignatureCheck.SIGNATURE: "the signature verifies over the payload with the certificate's key",
    SignatureCheck.CERTIFICATE: (
        "the certificate chains to a Fulcio CA of the trusted root, was valid when logged "
        "and names a signer of AUDITOR_SIGNERS"
    ),
    SignatureCheck.TRANSPARENCY: "the transparency log vouches for this very signature",
}


@dataclass(frozen=True)
class Verified:
    """A signature that passed every check, and whose it is."""

    identity: str
    issuer: str
    log_index: int


@dataclass(frozen=True)
class Failed:
    """The first check that failed on the signature that got furthest.

    The signer fields hold what the certificate claims (unverified) so that an operator sees who tried;
    they are None where the check failed before the certificate or the log entry was read.
    """

    check: SignatureCheck
    detail: str
    identity: str | None = None
    issuer: str | None = None
    log_index: int | None = None

    @property
    def message(self) -> str:
        """One line for the verdict: which check failed and why."""
        return f"{self.check} check failed ({self.check.description}): {self.detail}"


Outcome = Verified | Failed


class CheckFailedError(Exception):
    """Raised inside the package by the first check that fails; turned into a Failed at the API."""

    def __init__(self, check: SignatureCheck, detail: str) -> None:
        super().__init__(f"{check}: {detail}")
        self.check = check
        self.detail = detail
