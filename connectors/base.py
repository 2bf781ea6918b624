"""The seams every connector implements: alert formats and sources in, enrichers and responders.

* ``AlertFormat`` / ``AlertSource``: records in, ``Alert`` out (``MappingError`` when a record cannot be one);
* ``Enricher``: what is known about one entity, as evidence;
* ``Responder``: carries out actions for the capabilities it declares (``ResponderError`` when it cannot).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Protocol, runtime_checkable

from soc_agent.types import Alert, Entity, EntityKind, Evidence, ProposedAction


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


class Enricher(Protocol):
    """Looks up what is known about one entity."""

    name: str
    kinds: frozenset[EntityKind]
    # Optional: ``in_memory = True`` runs the lookup inline (no timeout thread); only for
    # enrichers that read local memory and cannot block.

    def lookup(self, entity: Entity, rules: frozenset[str]) -> list[Evidence]:
        """Evidence about ``entity`` (empty when nothing is known). May raise; the runner contains it."""
        ...


class ResponderError(RuntimeError):
    """An action could not be carried out; the message is safe to show and log."""


class Responder(Protocol):
    """Carries out actions for the capabilities it declares."""

    name: str
    capabilities: frozenset[str]
    # Optional: ``transactional = True`` when every effect is a row in the pipeline's own store
    # transaction; its intent, effect and result then commit together (exactly once by atomicity).

    def execute(self, action: ProposedAction, case_id: str, action_id: int, now: datetime) -> dict[str, Any]:
        """Apply the action; idempotent on (effect, target). Returns a JSON-able result."""
        ...

    def verify(self, action: ProposedAction) -> bool:
        """True when the action's effect is in place."""
        ...

    def rollback(self, action: ProposedAction, case_id: str, now: datetime) -> dict[str, Any]:
        """Undo the action's effect."""
        ...

    def expire(self, now: datetime) -> list[tuple[str, str, int | None]]:
        """Lift effects whose TTL ran out; returns (effect, target, action_id) for each."""
        ...
