"""Logging for the functions, where Cloud Logging reads stdout: google-cloud-logging's structured lines,
with the request's trace, log labels and ``httpRequest``. Only ``main.py`` sets this up; the CLI writes
plain JSON lines and never imports google-cloud-logging."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TextIO

from google.cloud.logging_v2.handlers import StructuredLogHandler

from function import verdict


def structured_lines(stream: TextIO, labels: Mapping[str, str] | None) -> logging.Handler:
    """Cloud Logging's structured JSON lines; ``labels`` become ``logging.googleapis.com/labels``."""
    # With the project known, the handler names the request's trace in full, as Cloud Logging needs it.
    project = os.environ.get("GOOGLE_CLOUD_PROJECT")
    return StructuredLogHandler(stream=stream, labels=dict(labels) if labels else None, project_id=project)


def set_up() -> None:
    """Root logging and every verdict logger write Cloud Logging's structured lines to stdout."""
    if os.environ.get("K_SERVICE"):
        # In the cloud: google-cloud-logging picks the structured stdout handler for Cloud Run.
        import google.cloud.logging

        google.cloud.logging.Client().setup_logging(log_level=logging.INFO)
    else:
        logging.basicConfig(level=logging.INFO, handlers=[StructuredLogHandler()])
    verdict.write_lines_with(structured_lines)
