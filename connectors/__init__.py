"""Connectors: vendor formats in (pure mappings to ``Alert``), responders out.

``parse_record`` turns one input line into an ``Alert`` (auto-detecting its
format unless one is forced) or raises ``MappingError`` with a reason fit
for the dead-letter table.

The registry (and through it every vendor package) loads on first use, not
when the package is imported: the store imports ``connectors.cursors`` to
register its table, and the vendor responders import the store.
"""

from __future__ import annotations

from typing import Any

from connectors.base import MappingError

__all__ = ["FORMATS", "MappingError", "parse_record"]


def __getattr__(name: str) -> Any:
    if name in ("FORMATS", "parse_record"):
        from connectors import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'connectors' has no attribute {name!r}")
