"""The responder protocol: capabilities in, effects out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from soc_agent.types import ProposedAction


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
