"""Jira responder: one issue per case, found again by its ``soc-case-<id>`` label.

* ``open_ticket`` (``ticket.create``): ``POST /rest/api/3/issue``, unless an
  issue for the case is still open; rollback closes it.
* ``annotate_case`` (``case.annotate``): ``POST .../issue/{key}/comment``.
* ``close_ticket`` (``ticket.close``): the transition named
  ``close_transition``, else the first into the *done* status category.
* ``post_to_ticket``: the agent's notes on an issue the ticketing webhook
  linked to a case (``ResponderTicketSink``).

Auth: basic (account email + API token) or bearer. The account needs the
*Browse*, *Create issues*, *Add comments* and *Transition issues* project
permissions.
"""

from __future__ import annotations

import re
from typing import Any

from connectors.errors import BadResponse
from connectors.http import ConnectorClient
from connectors.ticket_responder import TicketResponder
from connectors.base import ResponderError


_ISSUE_REF = re.compile(r"[A-Z][A-Z0-9_]{0,49}-\d{1,12}|\d{1,18}")
"""An issue key (``SOC-42``) or id: the only shapes that go into a URL path."""


def _adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document (v3 requires ADF)."""
    return {"type": "doc", "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": text or "-"}]}]}


class JiraResponder(TicketResponder):
    """Tickets for cases in one Jira project."""

    provider = "jira"
    none_open = "no open issue for the case"

    def __init__(self, client: ConnectorClient, *, project: str, name: str = "jira", issue_type: str = "Task",
                 close_transition: str | None = None) -> None:
        self.name = name
        self.client = client
        self.project = project
        self.issue_type = issue_type
        self.close_transition = close_transition

    @staticmethod
    def label(case_id: str) -> str:
        """The label that ties an issue to a case (labels cannot hold spaces)."""
        return "soc-case-" + re.sub(r"[^A-Za-z0-9_.-]", "-", case_id)

    def _find_open(self, case_id: str) -> dict | None:
        jql = f'project = "{self.project}" AND labels = "{self.label(case_id)}" AND statusCategory != Done'
        body = self.client.call("GET", "/rest/api/3/search/jql", permission="Browse projects",
                                params={"jql": jql, "fields": "status", "maxResults": "1"})
        issues = body.get("issues")
        if not isinstance(issues, list):
            raise BadResponse(self.name, "GET /rest/api/3/search/jql did not return an issues list")
        hit = issues[0] if issues and isinstance(issues[0], dict) and issues[0].get("key") else None
        return {"key": str(hit["key"])} if hit else None

    def _ref(self, ticket: dict) -> dict[str, Any]:
        return {"ticket": ticket["key"]}

    def _create(self, case_id: str, title: str, text: str) -> dict[str, Any]:
        created = self.client.call("POST", "/rest/api/3/issue", permission="Create issues", json={"fields": {
            "project": {"key": self.project}, "issuetype": {"name": self.issue_type},
            "summary": title[:255], "description": _adf(text),
            "labels": ["soc-agent", self.label(case_id)]}})
        if not created.get("key"):
            raise BadResponse(self.name, "POST /rest/api/3/issue returned no issue key")
        return {"ticket": created["key"], "ticket_id": created.get("id")}

    def _annotate(self, ticket: dict, text: str) -> dict[str, Any]:
        self.client.call("POST", f"/rest/api/3/issue/{ticket['key']}/comment", permission="Add comments",
                         json={"body": _adf(text)})
        return {"ticket": ticket["key"]}

    def _close(self, ticket: dict, text: str) -> dict[str, Any]:
        key = ticket["key"]
        body = self.client.call("GET", f"/rest/api/3/issue/{key}/transitions", permission="Transition issues")
        transitions = [t for t in body.get("transitions") or [] if isinstance(t, dict)]
        chosen = next((t for t in transitions if self.close_transition and t.get("name") == self.close_transition),
                      None) or next((t for t in transitions
                                     if (t.get("to") or {}).get("statusCategory", {}).get("key") == "done"), None)
        if chosen is None:
            raise ResponderError(f"{self.name}: issue {key} has no transition to a done status")
        self.client.call("POST", f"/rest/api/3/issue/{key}/comment", json={"body": _adf(text)},
                         permission="Add comments")
        self.client.call("POST", f"/rest/api/3/issue/{key}/transitions", json={"transition": {"id": chosen["id"]}},
                         permission="Transition issues", shape=None)
        return {"ticket": key, "closed": True}

    def post_to_ticket(self, ticket_id: str, body: str) -> None:
        """Comment ``body`` on issue ``ticket_id`` (a key or numeric id from the ticketing webhook)."""
        if not _ISSUE_REF.fullmatch(ticket_id):
            raise ResponderError(f"{self.name}: {ticket_id[:40]!r} is not an issue key or id")
        self.client.call("POST", f"/rest/api/3/issue/{ticket_id}/comment", permission="Add comments",
                         json={"body": _adf(body[:30000])})
