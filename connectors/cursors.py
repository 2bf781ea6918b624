"""Where each polled alert source stopped: the ``source_cursors`` table.

The poll runner saves a source's cursor in the same transaction as the
alerts that poll produced, so a restart resumes exactly after the last
committed batch: nothing is skipped, and nothing committed is fetched again.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlmodel import Field, Session, SQLModel

__all__ = ["SourceCursorRow", "load_cursor", "save_cursor"]


class SourceCursorRow(SQLModel, table=True):
    """One polled source's position and health."""

    __tablename__ = "source_cursors"

    name: str = Field(primary_key=True, description="the connector name from the connectors file")
    cursor: str | None = Field(default=None, description="opaque to the runner; the source's own format")
    updated_at: datetime = Field(description="when a poll last succeeded")
    polls: int = Field(default=0, description="successful polls")
    failures: int = Field(default=0, description="failed polls since the last success")
    last_error: str | None = Field(default=None, description="the last ConnectorError message (safe to show)")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def load_cursor(session: Session, name: str) -> str | None:
    """The saved cursor of source ``name``, or None before its first successful poll."""
    row = session.get(SourceCursorRow, name)
    return row.cursor if row is not None else None


def save_cursor(session: Session, name: str, cursor: str | None, error: str | None = None) -> SourceCursorRow:
    """Record a poll in ``session`` (not committed: the caller commits it with the alerts).

    With ``error`` the poll failed: the cursor is left as it was and the
    failure is counted, so ``soc-agent`` tables show a source that keeps failing.
    """
    row = session.get(SourceCursorRow, name)
    if row is None:
        row = SourceCursorRow(name=name, updated_at=_now())
        session.add(row)
    if error is None:
        row.cursor, row.updated_at, row.polls, row.failures, row.last_error = cursor, _now(), row.polls + 1, 0, None
    else:
        row.failures, row.last_error = row.failures + 1, error[:1000]
    return row
