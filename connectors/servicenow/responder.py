"""ServiceNow responder over the Table API: one incident per case.

The incident carries ``correlation_id = <case id>`` so it is found again
(``GET /api/now/table/<table>?sysparm_query=correlation_id=<id>^active=true``).

* ``open_ticket``: ``POST /api/now/table/<table>``; rollback closes it.
* ``annotate_case``: ``PATCH`` with ``work_notes``.
* ``close_ticket``: ``PATCH`` with ``state`` (default 6, Resolved),
  ``close_code`` and ``close_notes``.

``table`` defaults to ``incident`` (``sn_si_incident`` for Security
Incident Response). The integration user needs the ``itil`` role (or
``sn_si.analyst``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from connectors.errors import BadResponse
from connectors.http import ConnectorClient
from soc_agent.responders.base import ResponderError
from soc_agent.types import ProposedAction


_SYS_ID = re.compile(r"[0-9a-f]{32}")
_NUMBER = re.compile(r"[A-Z]{2,10}\d{3,12}")
"""A record number (``INC0010001``): the only other shape allowed into a query."""


class ServiceNowResponder:
    """Incidents for cases in one ServiceNow table."""

    capabilities = frozenset({"ticket.create", "ticket.close", "case.annotate"})
    provider = "servicenow"
    """The ticketing webhook's provider whose tickets this responder can post to."""

    def __init__(self, client: ConnectorClient, *, name: str = "servicenow", table: str = "incident",
                 close_state: str = "6", close_code: str = "Solved (Permanently)",
                 assignment_group: str | None = None) -> None:
        self.name = name
        self.client = client
        self.table = table
        self.close_state = close_state
        self.close_code = close_code
        self.assignment_group = assignment_group

    def _open_incident(self, case_id: str) -> dict | None:
        if "^" in case_id:  # ^ separates encoded-query clauses
            raise ResponderError(f"{self.name}: case id contains '^'")
        body = self.client.call("GET", f"/api/now/table/{self.table}", permission="itil (read incident)", params={
            "sysparm_query": f"correlation_id={case_id}^active=true", "sysparm_limit": "1",
            "sysparm_fields": "sys_id,number,state"})
        rows = body.get("result")
        if not isinstance(rows, list):
            raise BadResponse(self.name, f"GET /api/now/table/{self.table} did not return a result list")
        return rows[0] if rows and isinstance(rows[0], dict) and rows[0].get("sys_id") else None

    def _patch(self, sys_id: str, fields: dict[str, Any]) -> dict:
        body = self.client.call("PATCH", f"/api/now/table/{self.table}/{sys_id}", json=fields,
                                permission="itil (write incident)")
        return body.get("result") if isinstance(body.get("result"), dict) else {}

    def _close(self, incident: dict, notes: str) -> dict[str, Any]:
        self._patch(incident["sys_id"], {"state": self.close_state, "close_code": self.close_code,
                                         "close_notes": notes})
        return {"ticket": incident.get("number"), "sys_id": incident["sys_id"], "closed": True}

    def execute(self, action: ProposedAction, case_id: str, action_id: int, now: datetime) -> dict[str, Any]:
        """Create, annotate or close the case's incident."""
        incident = self._open_incident(case_id)
        text = str(action.params.get("text") or action.params.get("summary") or "")
        if action.name == "open_ticket":
            if incident:
                return {"ticket": incident.get("number"), "sys_id": incident["sys_id"], "already_open": True}
            fields = {"short_description": str(action.params.get("title") or f"soc-agent case {case_id}")[:160],
                      "description": text or f"Opened by soc-agent for case {case_id}.",
                      "correlation_id": case_id, "correlation_display": "soc-agent"}
            if self.assignment_group:
                fields["assignment_group"] = self.assignment_group
            body = self.client.call("POST", f"/api/now/table/{self.table}", json=fields,
                                    permission="itil (create incident)")
            result = body.get("result")
            if not isinstance(result, dict) or not result.get("sys_id"):
                raise BadResponse(self.name, f"POST /api/now/table/{self.table} returned no sys_id")
            return {"ticket": result.get("number"), "sys_id": result["sys_id"]}
        if action.name == "annotate_case":
            if incident is None:
                return {"annotated": False, "reason": "no open incident for the case"}
            self._patch(incident["sys_id"], {"work_notes": text or f"soc-agent update on case {case_id}"})
            return {"ticket": incident.get("number"), "annotated": True}
        if action.name == "close_ticket":
            if incident is None:
                return {"already_closed": True}
            return self._close(incident, text or "Closed by soc-agent.")
        raise ResponderError(f"{self.name} cannot run {action.name}")

    def post_to_ticket(self, ticket_id: str, body: str) -> None:
        """Add ``body`` as a work note to record ``ticket_id`` (a sys_id, or a number such as ``INC0010001``)."""
        if _SYS_ID.fullmatch(ticket_id):
            sys_id = ticket_id
        elif _NUMBER.fullmatch(ticket_id):
            found = self.client.call("GET", f"/api/now/table/{self.table}", permission="itil (read incident)",
                                     params={"sysparm_query": f"number={ticket_id}", "sysparm_limit": "1",
                                             "sysparm_fields": "sys_id"})
            rows = found.get("result")
            if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict) \
                    or not _SYS_ID.fullmatch(str(rows[0].get("sys_id", ""))):
                raise ResponderError(f"{self.name}: no {self.table} record numbered {ticket_id}")
            sys_id = rows[0]["sys_id"]
        else:
            raise ResponderError(f"{self.name}: {ticket_id[:40]!r} is not a sys_id or a record number")
        self._patch(sys_id, {"work_notes": body[:30000]})

    def verify(self, action: ProposedAction) -> bool:
        """Cannot tell without the case id; the executor's re-run is idempotent."""
        return False

    def rollback(self, action: ProposedAction, case_id: str, now: datetime) -> dict[str, Any]:
        """Undo ``open_ticket`` by closing the case's incident."""
        if action.name != "open_ticket":
            raise ResponderError(f"{self.name}: {action.name} has no rollback")
        incident = self._open_incident(case_id)
        if incident is None:
            return {"already_closed": True}
        return self._close(incident, "Closed by soc-agent: the ticket was rolled back.")

    def expire(self, now: datetime) -> list[tuple[str, str, int | None]]:
        """Tickets do not expire."""
        return []
