"""The one error model of the CLI and the HTTP functions: every error is of one of two kinds.

=============  ==================================================  ========  ===========
kind           meaning                                             CLI exit  HTTP status
=============  ==================================================  ========  ===========
``Retryable``  a fault that trying again can cure (Cloud Storage,  75        503
               a registry, GitHub or Pub/Sub not answering)
``Permanent``  something to fix first (a bad setting or argument,  2         503
               a missing bucket or folder, refused credentials)
=============  ==================================================  ========  ===========

Exit 75 is ``EX_TEMPFAIL`` of ``sysexits.h``, which schedulers retry; exit 2 is a usage error. Both kinds
answer 503 over HTTP: the contract's ``sync_index`` answers 503 for every failed rebuild (Pub/Sub and Cloud
Scheduler deliver it again, which a fixed set-up then answers), and its ERROR line says what to fix.

An error can be both (``StoreMissing`` is a ``StoreError``, which audit code catches as one fault among
others, and ``Permanent``): ``Permanent`` wins, since no number of retries fixes a set-up.

Outcomes that are not errors keep their own codes where they are decided: an alarm (exit 1), a refused
publication (exit 1, HTTP 409), a bad request (HTTP 400, 401, 405).
"""

from __future__ import annotations

from dataclasses import dataclass


class AuditorError(Exception):
    """An error that the CLI and the HTTP functions report by its kind (see the table above)."""


class Retryable(AuditorError):
    """Trying again can cure it."""


class Permanent(AuditorError):
    """Trying again cannot cure it: the set-up, a setting or an argument must be fixed first."""


@dataclass(frozen=True, slots=True)
class Kind:
    exit_code: int
    http_status: int


PERMANENT = Kind(exit_code=2, http_status=503)
RETRYABLE = Kind(exit_code=75, http_status=503)


def kind(error: AuditorError) -> Kind:
    """The kind of ``error``; an error that is both is ``Permanent``, and one that is neither ``Retryable``."""
    return PERMANENT if isinstance(error, Permanent) else RETRYABLE
