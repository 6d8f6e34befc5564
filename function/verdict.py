"""Verdicts and the one structured log line each becomes (the contract's verdict line)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TextIO


class Kind(StrEnum):
    """The verdict: what an operator is told about an event or a finding of the sweep."""

    VERIFIED = "VERIFIED"
    REJECTED = "REJECTED"
    IGNORED = "IGNORED"
    MALFORMED = "MALFORMED"
    RETRY = "RETRY"
    # Only the sweep reports this: a promoted digest or tag that a destination registry does not hold.
    MISSING = "MISSING"


class Basis(StrEnum):
    """Why a VERIFIED verdict holds."""

    LISTED = "listed"
    CHILD = "child"
    SIGNATURE = "signature"
    ATTESTATION = "attestation"
    SBOM = "sbom"
    REFERRER = "referrer"


class Reason(StrEnum):
    """Why a REJECTED, IGNORED or MISSING verdict holds (RETRY and MALFORMED carry a short free text)."""

    UNKNOWN_IMAGE = "unknown_image"
    UNKNOWN_DIGEST = "unknown_digest"
    TAG_MISMATCH = "tag_mismatch"
    ORPHAN_ARTIFACT = "orphan_artifact"
    BAD_ARTIFACT = "bad_artifact"
    BAD_SIGNATURE = "bad_signature"
    DELETION = "deletion"
    FROZEN = "frozen"
    NOT_AUDITED = "not_audited"
    ABSENT = "absent"
    TAG_ABSENT = "tag_absent"
    UNSIGNED = "unsigned"


class Origin(StrEnum):
    """Where a verdict line comes from (its ``source`` field)."""

    EVENT = "event"
    SWEEP = "sweep"


SEVERITY = {
    Kind.VERIFIED: logging.INFO,
    Kind.IGNORED: logging.INFO,
    Kind.RETRY: logging.WARNING,
    Kind.REJECTED: logging.ERROR,
    Kind.MALFORMED: logging.ERROR,
    Kind.MISSING: logging.ERROR,
}
# Error Reporting groups log entries of this type; the alerting policy keys on REJECTED/MALFORMED.
ERROR_EVENT_TYPE = "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"

VERDICT_LOGGER = "function.verdicts"


@dataclass(frozen=True, slots=True)
class IndexRef:
    """Which published index a verdict was decided by."""

    commit: str | None
    generation: int | None

    def fields(self) -> dict[str, Any]:
        return {"commit": self.commit, "generation": self.generation}


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: Kind
    message: str
    action: str | None = None
    path: str | None = None
    digest: str | None = None
    tag: str | None = None
    basis: Basis | None = None
    reason: str | None = None
    image: str | None = None
    parent: str | None = None
    registry_calls: int = 0
    # Where the line comes from: a registry event, or a finding of the sweep.
    source: Origin = Origin.EVENT
    # The index that decided (its k8s.io commit and store generation), so a past verdict can be traced.
    index: IndexRef | None = None

    @property
    def severity(self) -> int:
        return SEVERITY[self.verdict]

    @property
    def alarming(self) -> bool:
        return self.verdict in (Kind.REJECTED, Kind.MALFORMED, Kind.MISSING)

    def fields(self) -> dict[str, Any]:
        """The verdict line's payload (severity is added by the log handler from the level)."""
        payload: dict[str, Any] = {
            "message": self.message,
            "verdict": self.verdict,
            "basis": self.basis,
            "reason": self.reason,
            "action": self.action,
            "path": self.path,
            "digest": self.digest,
            "tag": self.tag,
            "image": self.image,
            "parent": self.parent,
            "source": self.source,
            "registry_calls": self.registry_calls,
            "index": self.index.fields() if self.index is not None else None,
        }
        if self.alarming:
            payload["@type"] = ERROR_EVENT_TYPE
        return payload


def json_line(payload: Mapping[str, Any], level: int) -> str:
    """A line of ``payload`` and its severity, and nothing else: the contract's fields for a person's or a
    script's stream (the functions write Cloud Logging's lines, see `function.cloudlog`)."""
    return json.dumps({**payload, "severity": logging.getLevelName(level)}, ensure_ascii=False)


def write_line(stream: TextIO, verdict: Verdict) -> None:
    """The verdict's `json_line` on ``stream``; whoever waits for more input flushes it first."""
    stream.write(json_line(verdict.fields(), verdict.severity) + "\n")


class JsonLines(logging.StreamHandler[TextIO]):
    """Writes each record of a verdict logger as its `json_line`."""

    def format(self, record: logging.LogRecord) -> str:
        payload = record.msg if isinstance(record.msg, dict) else {"message": record.getMessage()}
        return json_line(payload, record.levelno)


# Makes the handler of a verdict logger from its stream and log labels (which only Cloud Logging keeps).
LineHandler = Callable[[TextIO, Mapping[str, str] | None], logging.Handler]


def json_lines(stream: TextIO, labels: Mapping[str, str] | None) -> logging.Handler:
    return JsonLines(stream)


_line_handler: LineHandler = json_lines


def write_lines_with(handler: LineHandler) -> None:
    """Every verdict logger made from now on writes through ``handler``; the functions' entry points choose
    Cloud Logging's, everything else keeps plain JSON lines."""
    global _line_handler
    _line_handler = handler


def verdict_logger(
    stream: TextIO | None = None, labels: dict[str, str] | None = None, *, lines: LineHandler | None = None
) -> logging.Logger:
    """A logger whose records are verdict lines on ``stream`` (stdout by default), and nowhere else, written
    by ``lines`` (by default what `write_lines_with` chose)."""
    logger = logging.getLogger(VERDICT_LOGGER)
    logger.handlers.clear()
    logger.addHandler((lines or _line_handler)(stream or sys.stdout, labels))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def emit(logger: logging.Logger, verdict: Verdict, *, labels: dict[str, str] | None = None, **extra: Any) -> None:
    """Write the verdict line; ``extra`` adds fields such as the Pub/Sub message id, ``labels`` log labels."""
    payload = verdict.fields()
    payload.update(extra)
    logger.log(verdict.severity, payload, extra={"labels": labels} if labels else None)


def report(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """Write an operational line (a sync outcome, a stale index, a sweep summary) as structured JSON.

    Such lines never carry the key ``verdict``; alerts match them by their own keys (see terraform/)."""
    assert "verdict" not in fields
    logger.log(level, {"message": message, **fields})
