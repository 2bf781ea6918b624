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
from typing import Any

from connectors.errors import BadResponse
from connectors.http import ConnectorClient
from connectors.ticket_responder import TicketResponder
from connectors.base import ResponderError


_SYS_ID = re.compile(r"[0-9a-f]{32}")
_NUMBER = re.compile(r"[A-Z]{2,10}\d{3,12}")
"""A record number (``INC0010001``): the only other shape allowed into a query."""


class ServiceNowResponder(TicketResponder):
    """Incidents for cases in one ServiceNow table."""

    provider = "servicenow"
    none_open = "no open incident for the case"

    def __init__(self, client: ConnectorClient, *, name: str = "servicenow", table: str = "incident",
                 close_state: str = "6", close_code: str = "Solved (Permanently)",
                 assignment_group: str | None = None) -> None:
        self.name = name
        self.client = client
        self.table = table
        self.close_state = close_state
        self.close_code = close_code
        self.assignment_group = assignment_group

    def _find_open(self, case_id: str) -> dict | None:
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

    def _ref(self, ticket: dict) -> dict[str, Any]:
        return {"ticket": ticket.get("number"), "sys_id": ticket["sys_id"]}

    def _create(self, case_id: str, title: str, text: str) -> dict[str, Any]:
        fields = {"short_description": title[:160], "description": text,
                  "correlation_id": case_id, "correlation_display": "soc-agent"}
        if self.assignment_group:
            fields["assignment_group"] = self.assignment_group
        body = self.client.call("POST", f"/api/now/table/{self.table}", json=fields,
                                permission="itil (create incident)")
        result = body.get("result")
        if not isinstance(result, dict) or not result.get("sys_id"):
            raise BadResponse(self.name, f"POST /api/now/table/{self.table} returned no sys_id")
        return self._ref(result)

    def _annotate(self, ticket: dict, text: str) -> dict[str, Any]:
        self._patch(ticket["sys_id"], {"work_notes": text})
        return {"ticket": ticket.get("number")}

    def _close(self, ticket: dict, text: str) -> dict[str, Any]:
        self._patch(ticket["sys_id"], {"state": self.close_state, "close_code": self.close_code,
                                       "close_notes": text})
        return {**self._ref(ticket), "closed": True}

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
