"""The fleet's own tables: which broker messages have been taken in, and the resumes it owes.

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


class ResumeRow(SQLModel, table=True):
    """A decided approval whose paused run the owner of its case's partition resumes (fleet mode).

    The server writes it (and commits it) before it queues the resume
    message, so a worker that reads the message always finds it; the worker
    fills ``resumed_at`` in the commit that follows the run, so a resume is
    recorded once however often its message is delivered.
    """

    __tablename__ = "approval_resumes"

    approval_id: int = Field(primary_key=True)
    case_id: str = Field(index=True)
    partition: int = Field(description="the partition the case's alerts were taken in on")
    decision: str = Field(description="approved | rejected | expired")
    token: str = Field(description="names the one message that carries this decision; any other is stale")
    queued_by: str
    queued_at: datetime
    entry: str | None = Field(default=None, description="the resume message's stream entry id")
    resumed_at: datetime | None = None
    worker: str | None = Field(default=None, description="the worker that resumed the run")
    message: str | None = Field(default=None, description="<partition>:<entry> of the message it resumed from")
    action_status: str | None = None
    action_id: int | None = None
    ran: bool | None = Field(default=None, description="false: the run had already finished (a crash before "
                                                       "this row was written); recorded, not run again")
