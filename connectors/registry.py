"""Format registry and the one entry point that decodes and maps a line."""

from __future__ import annotations

import json
from typing import Any

from connectors import native
from connectors.base import AlertFormat, MappingError
from soc_agent.types import Alert

FORMATS: dict[str, AlertFormat] = {
    "native": AlertFormat("native", native.detect, native.to_alert),
}
"""Registered formats in detection order (most specific first)."""


# Real alerts nest a handful of levels; deeper input cannot be stored or rendered safely.
_MAX_DEPTH = 64


def _depth(value: Any) -> int:
    """Nesting depth of decoded JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > _MAX_DEPTH:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def decode(line: bytes, max_bytes: int) -> dict[str, Any]:
    """Bytes to a JSON object, or MappingError saying what is wrong with them."""
    if len(line) > max_bytes:
        raise MappingError(f"record is {len(line)} bytes, over the {max_bytes}-byte limit")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MappingError(f"invalid UTF-8 at byte {exc.start}") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MappingError(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise MappingError("JSON nested too deeply") from None
    if _depth(record) > _MAX_DEPTH:
        raise MappingError(f"JSON nested deeper than {_MAX_DEPTH} levels")
    if not isinstance(record, dict):
        raise MappingError(f"expected a JSON object, got {type(record).__name__}")
    return record


def parse_record(line: bytes, fmt: str = "auto", max_bytes: int = 256 * 1024) -> Alert:
    """One input line to an Alert; ``fmt`` forces a format, ``auto`` detects it."""
    record = decode(line, max_bytes)
    if fmt != "auto":
        chosen = FORMATS.get(fmt)
        if chosen is None:
            raise MappingError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
        return _map(chosen, record)
    for candidate in FORMATS.values():
        try:
            matched = candidate.detect(record)
        except Exception:  # a detector must never take the run down
            matched = False
        if matched:
            return _map(candidate, record)
    keys = ", ".join(sorted(record)[:8])
    raise MappingError(f"unknown format: no connector recognises a record with keys [{keys}]")


def _map(chosen: AlertFormat, record: dict[str, Any]) -> Alert:
    try:
        return chosen.to_alert(record)
    except MappingError:
        raise
    except Exception as exc:  # a mapper bug dead-letters the record instead of crashing the run
        raise MappingError(f"{chosen.name}: cannot map record ({type(exc).__name__})") from None
