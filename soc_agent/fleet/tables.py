"""The fleet's own table: which broker messages have been taken in.

The inbox row of a message is added to the worker's transaction *before*
the message is processed, so it commits together with the first durable
effect of that message: a redelivered message whose row exists is
acknowledged without being processed again. That is what makes intake
exactly-once when a worker dies between processing and acknowledging.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class InboxRow(SQLModel, table=True):
    """One broker message that a worker took in, and how it ended."""

    __tablename__ = "fleet_inbox"

    message_id: str = Field(primary_key=True, description="<partition>:<stream entry id>")
    partition: int = Field(index=True)
    alert_key: str | None = Field(default=None, index=True, description="source:id of the alert, when it parsed")
    outcome: str = Field(description="processed | dead_lettered (the pipeline's) | poison (gave up after N attempts)")
    processed_at: datetime
