"""Dispatch a Microsoft alert record to the mapping for its shape.

Three shapes reach us: Log Analytics ``SecurityAlert`` rows (PascalCase,
``Entities``/``ExtendedProperties`` as JSON strings), the Sentinel ARM
``SecurityAlert`` entity (``kind`` + ``properties``), and Microsoft Graph
security alerts (``alerts_v2``, or the deprecated v1 ``security/alerts``).
"""

from __future__ import annotations

from typing import Any

from connectors._common import fail, require_dict
from connectors.sentinel import _graph, _log_analytics
from soc_agent.types import Alert

NAME = "sentinel"


def detect(record: dict[str, Any]) -> bool:
    """True for any of the three alert shapes; incidents and list responses are not alerts."""
    return _log_analytics.is_row(record) or _log_analytics.is_arm(record) or _graph.version(record) is not None


def to_alert(record: dict[str, Any]) -> Alert:
    """Map one alert of any supported shape."""
    require_dict(record, NAME)
    if _log_analytics.is_row(record):
        return _log_analytics.row_to_alert(record)
    if _log_analytics.is_arm(record):
        return _log_analytics.arm_to_alert(record)
    version = _graph.version(record)
    if version == 2:
        return _graph.v2_to_alert(record)
    if version == 1:
        return _graph.v1_to_alert(record)
    if isinstance(record.get("value"), list):
        raise fail(NAME, "a list response (value[]): split it into one alert per line")
    raise fail(NAME, "not a SecurityAlert row, ARM SecurityAlert entity or Graph security alert")
