"""Format registry and the one entry point that decodes and maps a line."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from connectors import authlog, crowdstrike, defender, elastic, native, ocsf, sentinel, splunk, wazuh
from connectors.base import AlertFormat, MappingError
from connectors.generic.mapping import as_format, load_mapping, mapping_from_env
from soc_agent.types import Alert

BUILTIN_FORMATS: tuple[AlertFormat, ...] = (
    # Each vendor detector keys on fields only that vendor emits, so their order
    # matters little; native (three common top-level keys) must stay last.
    AlertFormat("elastic", elastic.detect, elastic.to_alert),
    AlertFormat("crowdstrike", crowdstrike.detect, crowdstrike.to_alert),
    AlertFormat("sentinel", sentinel.detect, sentinel.to_alert),
    AlertFormat("splunk", splunk.detect, splunk.to_alert),
    AlertFormat("wazuh", wazuh.detect, wazuh.to_alert),
    AlertFormat("ocsf", ocsf.detect, ocsf.to_alert),
    AlertFormat("authlog", authlog.detect, authlog.to_alert),
    AlertFormat("defender", defender.detect, defender.to_alert),
    AlertFormat("native", native.detect, native.to_alert),
)
"""The formats every process knows, in detection order (most specific first)."""


def build_formats(environ: Mapping[str, str]) -> dict[str, AlertFormat]:
    """The built-in formats plus the generic mapping ``environ`` names (``SOC_AGENT_GENERIC_MAPPING``).

    A bad mapping file raises ``GenericMappingError`` with its file:key error.
    """
    registry = {fmt.name: fmt for fmt in BUILTIN_FORMATS}
    mapping = mapping_from_env(environ)
    if mapping is not None:
        install_format(as_format(mapping), registry=registry)
    return registry


@cache
def formats() -> dict[str, AlertFormat]:
    """This process's registry, built from its environment on first use (``connectors.FORMATS``).

    The same dict is returned every time and ``install_format`` updates it in
    place, so callers holding it see later registrations.
    """
    return build_formats(os.environ)


def install_format(fmt: AlertFormat, before: str = "native", registry: dict[str, AlertFormat] | None = None) -> None:
    """Register (or replace) a format, placed just before ``before`` in detection order.

    ``registry`` defaults to this process's (``formats()``); it is updated in place.
    """
    registry = formats() if registry is None else registry
    items = [(name, existing) for name, existing in registry.items() if name != fmt.name]
    at = next((i for i, (name, _) in enumerate(items) if name == before), len(items))
    items.insert(at, (fmt.name, fmt))
    registry.clear()
    registry.update(items)


def register_generic(mapping_path: str | Path) -> AlertFormat:
    """Load a mapping and register it as the ``generic`` format (replacing any earlier one).

    It goes after every vendor format and before ``native``: a user mapping keyed
    on common fields such as ``@timestamp`` must not steal vendor records.
    """
    fmt = as_format(load_mapping(mapping_path))
    install_format(fmt, before="native")
    return fmt


def __getattr__(name: str) -> Any:
    # FORMATS stays a module attribute for its readers, but is built on first use: importing reads no environment.
    if name == "FORMATS":
        return formats()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def _text_record(line: bytes, fmt: str, max_bytes: int) -> dict[str, Any] | None:
    """The authlog record for a line that does not look like JSON, or None to decode it as JSON.

    Only lines starting with ``{`` or ``[`` are JSON candidates, so a truncated JSON
    object still gets the JSON error; a forced JSON format keeps the JSON error too.
    """
    if fmt not in ("auto", "authlog") or len(line) > max_bytes:
        return None
    stripped = line.lstrip()
    if not stripped or stripped[:1] in (b"{", b"["):
        return None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return authlog.record_from_text(text.strip())


def parse_record(line: bytes, fmt: str = "auto", max_bytes: int = 256 * 1024) -> Alert:
    """One input line to an Alert; ``fmt`` forces a format, ``auto`` detects it.

    JSON lines are decoded and offered to each format's detector; other text
    lines are offered to the ``authlog`` (sshd syslog) format.
    """
    record = _text_record(line, fmt, max_bytes)
    if record is None:
        record = decode(line, max_bytes)
    elif fmt == "auto" and not authlog.detect(record):
        raise MappingError(f"unknown format: not JSON and not a syslog line: {record[authlog.TEXT_KEY][:60]!r}")
    if fmt != "auto":
        known = formats()
        chosen = known.get(fmt)
        if chosen is None:
            raise MappingError(f"unknown format {fmt!r}; known: {', '.join(known)}")
        return _map(chosen, record)
    for candidate in formats().values():
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
