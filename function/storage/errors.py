"""What can go wrong with a store, by kind (``function.errors``): a missing bucket or folder and refused
credentials are to be fixed, every other fault may heal by itself."""

from __future__ import annotations

from function.errors import Permanent, Retryable


class StoreError(Retryable):
    """The store could not be read or written; the decision stays open and the caller retries later."""


class StoreMissing(StoreError, Permanent):
    """The bucket or local folder the URI names does not exist: no retry cures that, the URI or the set-up
    must be fixed. A ``StoreError`` still, so a function that cannot read its index leaves events open."""


class StoreDenied(StoreError, Permanent):
    """Cloud Storage refused the caller, or no credentials were found: the credentials or the IAM grants
    must be fixed. A ``StoreError`` still, for the same reason as ``StoreMissing``."""


class GenerationMismatch(StoreError):
    """The write's precondition failed: someone else wrote first. Re-read, merge, write again."""


class CorruptIndex(StoreError):
    """The stored bytes cannot be decoded: reading them again cannot help, only a new publication."""
