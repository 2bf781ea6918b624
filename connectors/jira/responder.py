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
from datetime import datetime
from typing import Any

from connectors.errors import BadResponse
from connectors.http import ConnectorClient
from soc_agent.responders.base import ResponderError
from soc_agent.types import ProposedAction


_ISSUE_REF = re.compile(r"[A-Z][A-Z0-9_]{0,49}-\d{1,12}|\d{1,18}")
"""An issue key (``SOC-42``) or id: the only shapes that go into a URL path."""


def _adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document (v3 requires ADF)."""
    return {"type": "doc", "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": text or "-"}]}]}


def _text(action: ProposedAction, case_id: str, default: str) -> str:
    return str(action.params.get("text") or action.params.get("summary") or default)[:30000]


class JiraResponder:
    """Tickets for cases in one Jira project."""

    capabilities = frozenset({"ticket.create", "ticket.close", "case.annotate"})
    provider = "jira"
    """The ticketing webhook's provider whose tickets this responder can post to."""

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

    def _open_issue(self, case_id: str) -> str | None:
        jql = f'project = "{self.project}" AND labels = "{self.label(case_id)}" AND statusCategory != Done'
        body = self.client.call("GET", "/rest/api/3/search/jql", permission="Browse projects",
                                params={"jql": jql, "fields": "status", "maxResults": "1"})
        issues = body.get("issues")
        if not isinstance(issues, list):
            raise BadResponse(self.name, "GET /rest/api/3/search/jql did not return an issues list")
        return str(issues[0]["key"]) if issues and isinstance(issues[0], dict) and issues[0].get("key") else None

    def _close(self, key: str, comment: str) -> None:
        body = self.client.call("GET", f"/rest/api/3/issue/{key}/transitions", permission="Transition issues")
        transitions = [t for t in body.get("transitions") or [] if isinstance(t, dict)]
        chosen = next((t for t in transitions if self.close_transition and t.get("name") == self.close_transition),
                      None) or next((t for t in transitions
                                     if (t.get("to") or {}).get("statusCategory", {}).get("key") == "done"), None)
        if chosen is None:
            raise ResponderError(f"{self.name}: issue {key} has no transition to a done status")
        self.client.call("POST", f"/rest/api/3/issue/{key}/comment", json={"body": _adf(comment)},
                         permission="Add comments")
        self.client.call("POST", f"/rest/api/3/issue/{key}/transitions", json={"transition": {"id": chosen["id"]}},
                         permission="Transition issues", shape=None)

    def execute(self, action: ProposedAction, case_id: str, action_id: int, now: datetime) -> dict[str, Any]:
        """Create, comment on or close the case's issue."""
        key = self._open_issue(case_id)
        if action.name == "open_ticket":
            if key:
                return {"ticket": key, "already_open": True}
            created = self.client.call("POST", "/rest/api/3/issue", permission="Create issues", json={"fields": {
                "project": {"key": self.project}, "issuetype": {"name": self.issue_type},
                "summary": str(action.params.get("title") or f"soc-agent case {case_id}")[:255],
                "description": _adf(_text(action, case_id, f"Opened by soc-agent for case {case_id}.")),
                "labels": ["soc-agent", self.label(case_id)]}})
            if not created.get("key"):
                raise BadResponse(self.name, "POST /rest/api/3/issue returned no issue key")
            return {"ticket": created["key"], "ticket_id": created.get("id")}
        if action.name == "annotate_case":
            if key is None:
                return {"annotated": False, "reason": "no open issue for the case"}
            self.client.call("POST", f"/rest/api/3/issue/{key}/comment", permission="Add comments",
                             json={"body": _adf(_text(action, case_id, f"soc-agent update on case {case_id}"))})
            return {"ticket": key, "annotated": True}
        if action.name == "close_ticket":
            if key is None:
                return {"already_closed": True}
            self._close(key, _text(action, case_id, "Closed by soc-agent."))
            return {"ticket": key, "closed": True}
        raise ResponderError(f"{self.name} cannot run {action.name}")

    def post_to_ticket(self, ticket_id: str, body: str) -> None:
        """Comment ``body`` on issue ``ticket_id`` (a key or numeric id from the ticketing webhook)."""
        if not _ISSUE_REF.fullmatch(ticket_id):
            raise ResponderError(f"{self.name}: {ticket_id[:40]!r} is not an issue key or id")
        self.client.call("POST", f"/rest/api/3/issue/{ticket_id}/comment", permission="Add comments",
                         json={"body": _adf(body[:30000])})

    def verify(self, action: ProposedAction) -> bool:
        """Cannot tell without the case id; the executor's re-run is idempotent."""
        return False

    def rollback(self, action: ProposedAction, case_id: str, now: datetime) -> dict[str, Any]:
        """Undo ``open_ticket`` by closing the case's issue."""
        if action.name != "open_ticket":
            raise ResponderError(f"{self.name}: {action.name} has no rollback")
        key = self._open_issue(case_id)
        if key is None:
            return {"already_closed": True}
        self._close(key, "Closed by soc-agent: the ticket was rolled back.")
        return {"ticket": key, "closed": True}

    def expire(self, now: datetime) -> list[tuple[str, str, int | None]]:
        """Tickets do not expire."""
        return []

