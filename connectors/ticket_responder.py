"""What every ticketing responder does the same way: one ticket per case, found again, opened once.

``TicketResponder`` holds the dispatch Jira, ServiceNow and TheHive share:

* ``open_ticket`` (``ticket.create``): create the case's ticket unless one is still
  open; ``rollback`` closes it again.
* ``annotate_case`` (``case.annotate``): comment on the open ticket.
* ``close_ticket`` (``ticket.close``): close the open ticket.

A vendor subclass supplies the calls: ``_find_open`` (the case's open ticket, or
None), ``_ref`` (how a ticket is named in results), ``_create``, ``_annotate`` and
``_close``, plus ``post_to_ticket`` for the ticketing webhook's way back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.base import ResponderError
from soc_agent.types import ProposedAction

MAX_TEXT = 30000
"""Characters of text sent in one ticket field or comment (the smallest vendor limit, Jira's)."""


class TicketResponder:
    """One ticket per case in one ticketing system; subclasses add the vendor calls."""

    capabilities = frozenset({"ticket.create", "ticket.close", "case.annotate"})
    name: str
    provider: str
    """The ticketing webhook's provider whose tickets this responder can post to."""
    none_open = "no open ticket for the case"
    """Why an annotation was skipped, in the vendor's words."""

    def execute(self, action: ProposedAction, case_id: str, action_id: int, now: datetime) -> dict[str, Any]:
        """Create, comment on or close the case's ticket."""
        ticket = self._find_open(case_id)
        text = str(action.params.get("text") or action.params.get("summary") or "")[:MAX_TEXT]
        if action.name == "open_ticket":
            if ticket:
                return {**self._ref(ticket), "already_open": True}
            title = str(action.params.get("title") or f"soc-agent case {case_id}")
            return self._create(case_id, title, text or f"Opened by soc-agent for case {case_id}.")
        if action.name == "annotate_case":
            if ticket is None:
                return {"annotated": False, "reason": self.none_open}
            return {**self._annotate(ticket, text or f"soc-agent update on case {case_id}"), "annotated": True}
        if action.name == "close_ticket":
            if ticket is None:
                return {"already_closed": True}
            return self._close(ticket, text or "Closed by soc-agent.")
        raise ResponderError(f"{self.name} cannot run {action.name}")

    def verify(self, action: ProposedAction) -> bool:
        """Cannot tell without the case id; the executor's re-run is idempotent."""
        return False

    def rollback(self, action: ProposedAction, case_id: str, now: datetime) -> dict[str, Any]:
        """Undo ``open_ticket`` by closing the case's ticket."""
        if action.name != "open_ticket":
            raise ResponderError(f"{self.name}: {action.name} has no rollback")
        ticket = self._find_open(case_id)
        if ticket is None:
            return {"already_closed": True}
        return self._close(ticket, "Closed by soc-agent: the ticket was rolled back.")

    def expire(self, now: datetime) -> list[tuple[str, str, int | None]]:
        """Tickets do not expire."""
        return []

    # ---- the vendor's calls --------------------------------------------------------------------

    def _find_open(self, case_id: str) -> dict | None:
        """The case's ticket that is still open, as the vendor returns it; None when there is none."""
        raise NotImplementedError

    def _ref(self, ticket: dict) -> dict[str, Any]:
        """How results name ``ticket`` (its key, number or id)."""
        raise NotImplementedError

    def _create(self, case_id: str, title: str, text: str) -> dict[str, Any]:
        """Open a ticket for the case; the result names it."""
        raise NotImplementedError

    def _annotate(self, ticket: dict, text: str) -> dict[str, Any]:
        """Comment ``text`` on ``ticket``; the result names it."""
        raise NotImplementedError

    def _close(self, ticket: dict, text: str) -> dict[str, Any]:
        """Close ``ticket`` with ``text`` as the closing note; the result names it and says ``closed``."""
        raise NotImplementedError
