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
from typing import Any

from connectors.errors import BadResponse
from connectors.http import ConnectorClient
from connectors.ticket_responder import TicketResponder
from connectors.base import ResponderError

_OPEN_STATUSES = {"New", "InProgress", "Open"}  # Open: TheHive 4
_CASE_ID = re.compile(r"~?[A-Za-z0-9_-]{1,64}")
"""A TheHive object id: the only shape that goes into a URL path."""


class TheHiveResponder(TicketResponder):
    """TheHive cases for soc-agent cases."""

    provider = "thehive"
    none_open = "no open TheHive case"

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

    def _find_open(self, case_id: str) -> dict | None:
        query = [{"_name": "listCase"},
                 {"_name": "filter", "_eq": {"_field": "tags", "_value": self.tag(case_id)}}]
        found = self.client.call("POST", "/api/v1/query", permission="manageCase (read)", shape=list,
                                 json={"query": query})
        for case in found:
            if isinstance(case, dict) and case.get("_id") and case.get("stage") != "Closed" \
                    and case.get("status", "New") in _OPEN_STATUSES:
                return case
        return None

    def _ref(self, ticket: dict) -> dict[str, Any]:
        return {"ticket": ticket.get("number") or ticket.get("caseId"), "thehive_id": ticket["_id"]}

    def _create(self, case_id: str, title: str, text: str) -> dict[str, Any]:
        created = self.client.call("POST", "/api/v1/case", permission="manageCase", json={
            "title": title[:512], "description": text, "severity": self.severity,
            "tags": ["soc-agent", self.tag(case_id)]})
        if not created.get("_id"):
            raise BadResponse(self.name, "POST /api/v1/case returned no _id")
        return self._ref(created)

    def _annotate(self, ticket: dict, text: str) -> dict[str, Any]:
        self.client.call("POST", f"/api/v1/case/{ticket['_id']}/comment", permission="manageCase",
                         json={"message": text}, shape=None)
        return {"thehive_id": ticket["_id"]}

    def _close(self, ticket: dict, text: str) -> dict[str, Any]:
        self.client.call("PATCH", f"/api/v1/case/{ticket['_id']}", permission="manageCase", shape=None,
                         json={"status": self.close_status, "summary": text})
        return {**self._ref(ticket), "closed": True}

    def post_to_ticket(self, ticket_id: str, body: str) -> None:
        """Comment ``body`` on TheHive case ``ticket_id`` (its ``_id``, e.g. ``~41000``)."""
        if not _CASE_ID.fullmatch(ticket_id):
            raise ResponderError(f"{self.name}: {ticket_id[:40]!r} is not a TheHive case id")
        self.client.call("POST", f"/api/v1/case/{ticket_id}/comment", permission="manageCase",
                         json={"message": body[:30000]}, shape=None)
