"""What every alert format provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from soc_agent.types import Alert


class MappingError(ValueError):
    """An input record that cannot become an Alert; the message says why."""


@dataclass(frozen=True)
class AlertFormat:
    """A format: how to recognise a decoded record and how to map it."""

    name: str
    detect: Callable[[dict[str, Any]], bool]
    to_alert: Callable[[dict[str, Any]], Alert]
