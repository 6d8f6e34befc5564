"""The answer of an HTTP function (``sync_index``, ``sweep``): a status and a JSON body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: dict[str, Any]

    def flask(self) -> tuple[bytes, int, dict[str, str]]:
        return orjson.dumps(self.body), self.status, {"Content-Type": "application/json"}
