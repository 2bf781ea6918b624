"""Connectors: vendor formats in (pure mappings to ``Alert``), responders out.

``parse_record`` turns one input line into an ``Alert`` (auto-detecting its
format unless one is forced) or raises ``MappingError`` with a reason fit
for the dead-letter table. ``FORMATS`` is the registry of formats in
detection order, built from the environment on first use.
"""

from __future__ import annotations

from typing import Any

from connectors.base import MappingError

__all__ = ["FORMATS", "MappingError", "parse_record"]


def __getattr__(name: str) -> Any:
    # The registry loads every vendor package: on first use only, so that importing one connector (or the
    # cursors table the schema lists) stays cheap.
    if name == "parse_record":
        from connectors.registry import parse_record  # deferred: loads every vendor package

        return parse_record
    if name == "FORMATS":
        from connectors.registry import formats  # deferred: loads every vendor package

        return formats()
    raise AttributeError(f"module 'connectors' has no attribute {name!r}")
