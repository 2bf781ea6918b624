"""TheHive responder (API v1, TheHive 5): one TheHive case per soc-agent case.

The TheHive case is tagged ``soc-case:<id>`` and found again with
``POST /api/v1/query`` (``listCase`` filtered on that tag).

* ``open_ticket``: ``POST /api/v1/case``; rollback closes it.
* ``annotate_case``: ``POST /api/v1/case/{id}/comment``.
* ``close_ticket``: ``PATCH /api/v1/case/{id}`` with ``status``
  (``close_status``, default ``Other``) and a ``summary``.

Auth: ``Authorization: Bearer <API key>``; the user needs the
``manageCase`` permission.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from connectors.errors import BadResponse
from connectors.http import ConnectorClient
from soc_agent.responders.base import ResponderError
from soc_agent.types import ProposedAction

_OPEN_STATUSES = {"New", "InProgress", "Open"}  # Open: TheHive 4
_CASE_ID = re.compile(r"~?[A-Za-z0-9_-]{1,64}")
"""A TheHive object id: the only shape that goes into a URL path."""


class TheHiveResponder:
    """TheHive cases for soc-agent cases."""

    capabilities = frozenset({"ticket.create", "ticket.close", "case.annotate"})
    provider = "thehive"
    """The ticketing webhook's provider whose tickets this responder can post to."""

    def __init__(self, client: ConnectorClient, *, name: str = "thehive", severity: int = 2,
                 close_status: str = "Other") -> None:
        self.name = name
        self.client = client
        self.severity = severity
        self.close_status = close_status

    @staticmethod
    def tag(case_id: str) -> str:
        """The tag that ties a TheHive case to a soc-agent case."""
        return f"soc-case:{case_id}"

    def _open_case(self, case_id: str) -> dict | None:
        query = [{"_name": "listCase"},
                 {"_name": "filter", "_eq": {"_field": "tags", "_value": self.tag(case_id)}}]
        found = self.client.call("POST", "/api/v1/query", permission="manageCase (read)", shape=list,
                                 json={"query": query})
        for case in found:
            if isinstance(case, dict) and case.get("_id") and case.get("stage") != "Closed" \
                    and case.get("status", "New") in _OPEN_STATUSES:
                return case
        return None

    def _close(self, case: dict, summary: str) -> dict[str, Any]:
        self.client.call("PATCH", f"/api/v1/case/{case['_id']}", permission="manageCase", shape=None,
                         json={"status": self.close_status, "summary": summary})
        return {"ticket": case.get("number") or case.get("caseId"), "thehive_id": case["_id"], "closed": True}

    def execute(self, action: ProposedAction, case_id: str, action_id: int, now: datetime) -> dict[str, Any]:
        """Create, comment on or close the TheHive case."""
        case = self._open_case(case_id)
        text = str(action.params.get("text") or action.params.get("summary") or "")
        if action.name == "open_ticket":
            if case:
                return {"ticket": case.get("number") or case.get("caseId"), "thehive_id": case["_id"],
                        "already_open": True}
            created = self.client.call("POST", "/api/v1/case", permission="manageCase", json={
                "title": str(action.params.get("title") or f"soc-agent case {case_id}")[:512],
                "description": text or f"Opened by soc-agent for case {case_id}.",
                "severity": self.severity, "tags": ["soc-agent", self.tag(case_id)]})
            if not created.get("_id"):
                raise BadResponse(self.name, "POST /api/v1/case returned no _id")
            return {"ticket": created.get("number") or created.get("caseId"), "thehive_id": created["_id"]}
        if action.name == "annotate_case":
            if case is None:
                return {"annotated": False, "reason": "no open TheHive case"}
            self.client.call("POST", f"/api/v1/case/{case['_id']}/comment", permission="manageCase",
                             json={"message": text or f"soc-agent update on case {case_id}"}, shape=None)
            return {"thehive_id": case["_id"], "annotated": True}
        if action.name == "close_ticket":
            if case is None:
                return {"already_closed": True}
            return self._close(case, text or "Closed by soc-agent.")
        raise ResponderError(f"{self.name} cannot run {action.name}")

    def post_to_ticket(self, ticket_id: str, body: str) -> None:
        """Comment ``body`` on TheHive case ``ticket_id`` (its ``_id``, e.g. ``~41000``)."""
        if not _CASE_ID.fullmatch(ticket_id):
            raise ResponderError(f"{self.name}: {ticket_id[:40]!r} is not a TheHive case id")
        self.client.call("POST", f"/api/v1/case/{ticket_id}/comment", permission="manageCase",
                         json={"message": body[:30000]}, shape=None)

    def verify(self, action: ProposedAction) -> bool:
        """Cannot tell without the case id; the executor's re-run is idempotent."""
        return False

    def rollback(self, action: ProposedAction, case_id: str, now: datetime) -> dict[str, Any]:
        """Undo ``open_ticket`` by closing the TheHive case."""
        if action.name != "open_ticket":
            raise ResponderError(f"{self.name}: {action.name} has no rollback")
        case = self._open_case(case_id)
        if case is None:
            return {"already_closed": True}
        return self._close(case, "Closed by soc-agent: the ticket was rolled back.")

    def expire(self, now: datetime) -> list[tuple[str, str, int | None]]:
        """Cases do not expire."""
        return []
