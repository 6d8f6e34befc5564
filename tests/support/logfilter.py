"""Cloud Logging queries and label extractors, evaluated against the log entry a JSON line becomes.

Covers the subset of the Logging query language that terraform/'s log-based metrics use: comparisons joined
by AND (or by line breaks), NOT, the operators ``=``, ``!=`` and ``:`` (with ``:*`` for presence), and value
lists ``("a" OR "b")``. Anything else raises, so that a filter written in syntax this matcher does not know
fails its test instead of passing it.
"""

from __future__ import annotations

import json
import re
from typing import Any

_TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>!=|=|:)|(?P<paren>[()])|(?P<word>[^\s()=:!"<>]+))')
_EXTRACTOR = re.compile(r'^(EXTRACT|REGEXP_EXTRACT)\(\s*([\w.@/-]+)\s*(?:,\s*"((?:[^"\\]|\\.)*)"\s*)?\)$')
# What the Cloud Run logging agent moves out of a structured line's jsonPayload into the entry itself.
_ENTRY_FIELDS = ("severity", "httpRequest")
_SPECIAL_PREFIX = "logging.googleapis.com/"


class UnsupportedFilter(ValueError):
    """The filter uses syntax beyond this matcher's subset."""


def log_entry(line: str, service: str) -> dict[str, Any]:
    """The Cloud Logging entry that Cloud Run makes of a structured JSON line written by ``service``."""
    payload = json.loads(line)
    entry: dict[str, Any] = {
        "resource": {"type": "cloud_run_revision", "labels": {"service_name": service}},
        "severity": payload.get("severity", "DEFAULT"),
    }
    entry["jsonPayload"] = {
        key: value for key, value in payload.items() if key not in _ENTRY_FIELDS and not key.startswith(_SPECIAL_PREFIX)
    }
    return entry


def _tokens(query: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    query = query.strip()
    while position < len(query):
        match = _TOKEN.match(query, position)
        if match is None or match.end() == position:
            raise UnsupportedFilter(f"cannot read {query[position:]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _field(entry: dict[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = entry
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    # A JSON null is no value: Cloud Logging drops null fields from jsonPayload.
    return node is not None, node


def text_of(value: Any) -> str:
    """A JSON value as Cloud Logging compares and extracts it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _at(tokens: list[tuple[str, str]], index: int) -> tuple[str, str]:
    if index >= len(tokens):
        raise UnsupportedFilter("the filter ends where a value or operator was expected")
    return tokens[index]


def _values(tokens: list[tuple[str, str]], index: int) -> tuple[list[str], int]:
    kind, value = _at(tokens, index)
    if kind == "string":
        return [json.loads(value)], index + 1
    if kind == "word":
        return [value], index + 1
    if (kind, value) != ("paren", "("):
        raise UnsupportedFilter(f"expected a value, found {value!r}")
    values: list[str] = []
    index += 1
    while True:
        (kind, value), index = _at(tokens, index), index + 1
        if kind not in ("string", "word"):
            raise UnsupportedFilter(f"expected a value in a list, found {value!r}")
        values.append(json.loads(value) if kind == "string" else value)
        kind, value = _at(tokens, index)
        index += 1
        if (kind, value) == ("paren", ")"):
            return values, index
        if (kind, value) != ("word", "OR"):
            raise UnsupportedFilter(f"a value list joins values with OR, found {value!r}")


def _compare(present: bool, actual: Any, op: str, values: list[str]) -> bool:
    if op == ":" and values == ["*"]:
        return present
    if not present:
        return op == "!="
    text = text_of(actual)
    if op == "=":
        return text in values
    if op == "!=":
        return text not in values
    # ":" is "has": a case-insensitive substring test.
    return any(value.lower() in text.lower() for value in values)


def matches(query: str, entry: dict[str, Any]) -> bool:
    """Whether the log entry satisfies the query (comparisons joined by AND, each possibly negated)."""
    tokens = _tokens(query)
    index = 0
    result = True
    while index < len(tokens):
        kind, value = tokens[index]
        if (kind, value) == ("word", "AND"):
            index += 1
            continue
        if kind == "word" and value == "OR":
            raise UnsupportedFilter("OR between comparisons is beyond this matcher")
        negate = (kind, value) == ("word", "NOT")
        if negate:
            index += 1
            kind, value = _at(tokens, index)
        if kind != "word":
            raise UnsupportedFilter(f"expected a field, found {value!r}")
        op_kind, op = _at(tokens, index + 1)
        if op_kind != "op":
            raise UnsupportedFilter(f"expected an operator after {value}, found {op!r}")
        values, index = _values(tokens, index + 2)
        present, actual = _field(entry, value)
        result = result and (_compare(present, actual, op, values) != negate)
    return result


def extract(extractor: str, entry: dict[str, Any]) -> str | None:
    """The label value a log-based metric's extractor (EXTRACT or REGEXP_EXTRACT) takes from the entry."""
    match = _EXTRACTOR.match(extractor.strip())
    if match is None:
        raise UnsupportedFilter(f"unknown extractor {extractor!r}")
    function, path, pattern = match.groups()
    present, value = _field(entry, path)
    if not present:
        return None
    text = text_of(value)
    if function == "EXTRACT":
        return text
    found = re.search(json.loads(f'"{pattern}"'), text)
    return found.group(1) if found else None
