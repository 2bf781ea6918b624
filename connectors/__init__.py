"""Connectors: vendor formats in (pure mappings to ``Alert``), responders out.

``parse_record`` turns one input line into an ``Alert`` (auto-detecting its
format unless one is forced) or raises ``MappingError`` with a reason fit
for the dead-letter table.
"""

from connectors.base import MappingError
from connectors.registry import FORMATS, parse_record

__all__ = ["FORMATS", "MappingError", "parse_record"]
