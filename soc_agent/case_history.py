"""A case's history of work by people: dispositions, reopenings, assignments and comments.

Two tables hold it: ``case_events`` (close, reopen, assign: written by
:class:`soc_agent.runners.case_actions.CaseActions`) and ``case_comments``
(comments from analysts, the approval queue and tickets). This module reads
both as one list, oldest first, and says each entry in one plain line for the
case notes. The lines are raw text: whoever renders them escapes them
(``notes.inert`` for markdown, ``terminal.safe_text`` for a terminal).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import select

from soc_agent.runners.tables import CaseCommentRow
from soc_agent.store.tables import CaseEventRow

__all__ = ["case_history", "history_line"]

_VERBS = {"close": "closed the case", "reopen": "reopened the case", "assign": "assigned the case"}


def _iso(value: datetime | None) -> str | None:
    # SQLite hands datetimes back naive; the store only ever writes UTC.
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def case_history(session, case_id: str) -> list[dict[str, Any]]:
    """Every disposition, reopening, assignment and comment on ``case_id``, oldest first.

    Each entry: ``kind`` (close | reopen | assign | comment), ``who``, ``role``
    (None for ticket and queue comments), ``source``, ``at`` (ISO-8601 UTC),
    ``disposition``, ``assignee``, ``text`` (the reason or the comment, as given).
    """
    entries: list[tuple[datetime, int, int, dict[str, Any]]] = []
    for event in session.exec(select(CaseEventRow).where(CaseEventRow.case_id == case_id)
                              .order_by(CaseEventRow.id)).all():
        entries.append((_naive(event.created_at), 0, event.id or 0, {
            "kind": event.kind, "who": event.who, "role": event.role, "source": event.source,
            "at": _iso(event.created_at), "disposition": event.disposition, "assignee": event.assignee,
            "text": event.reason, "status_before": event.status_before,
        }))
    for comment in session.exec(select(CaseCommentRow).where(CaseCommentRow.case_id == case_id)
                                .order_by(CaseCommentRow.id)).all():
        entries.append((_naive(comment.created_at), 1, comment.id or 0, {
            "kind": "comment", "who": comment.author, "role": comment.role, "source": comment.source,
            "at": _iso(comment.created_at), "disposition": None, "assignee": None, "text": comment.body,
        }))
    entries.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in entries]


def _naive(value: datetime) -> datetime:
    # Comparable whether the backend returned it aware (Postgres) or naive (SQLite).
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def history_line(entry: dict[str, Any]) -> str:
    """One history entry in words: ``2026-12-07 12:01 UTC ana (analyst) closed the case as ...: why``."""
    at = (entry.get("at") or "")[:16].replace("T", " ")
    who = entry.get("who") or "unknown"
    source = entry.get("source")
    via = f"via {source}" if source and source != "analyst" else None
    context = ", ".join(str(part) for part in (entry.get("role"), via) if part)
    kind = entry.get("kind")
    if kind == "comment":
        did = "commented"
    else:
        did = _VERBS.get(kind, str(kind))
    if kind == "close" and entry.get("disposition"):
        did += f" as {entry['disposition']}"
    if kind == "assign" and entry.get("assignee"):
        did = f"assigned the case to {entry['assignee']}"
    text = entry.get("text") or ""
    return f"{at} UTC {who}{f' ({context})' if context else ''} {did}{': ' + text if text else ''}"
