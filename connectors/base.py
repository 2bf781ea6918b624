"""What every alert format provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

from soc_agent.types import Alert


class MappingError(ValueError):
    """An input record that cannot become an Alert; the message says why."""


@dataclass(frozen=True)
class AlertFormat:
    """A format: how to recognise a decoded record and how to map it."""

    name: str
    detect: Callable[[dict[str, Any]], bool]
    to_alert: Callable[[dict[str, Any]], Alert]


@runtime_checkable
class AlertSource(Protocol):
    """A vendor API the agent polls for alerts.

    ``poll`` returns the raw vendor records newer than ``cursor`` (``None`` on
    the first poll: the source picks its own look-back) and the cursor to pass
    next time. A source never maps records itself: the caller feeds them to
    the registered ``format`` so an unmappable record is dead-lettered like any
    other input. Failures raise ``ConnectorError``; the cursor then stays where
    it was, so a failed poll loses nothing.
    """

    name: str
    """The connector name from the config; errors and cursors are keyed by it."""
    format: str
    """The ``connectors.FORMATS`` entry that maps this source's records."""

    def poll(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """Records after ``cursor``, oldest first, and the next cursor."""
        ...
