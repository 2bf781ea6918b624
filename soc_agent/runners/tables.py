"""Tables the runners add to the store: queue metadata, webhook deliveries, tickets.

They live on ``SQLModel.metadata`` like the core tables and are created by
``make_engine`` (listed in ``soc_agent.store.schema``).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class ApprovalMetaRow(SQLModel, table=True):
    """What the queue knows about an approval beyond the core row: who raised it, who may decide, when it expires.

    Written lazily the first time the queue sees an approval, so approvals made
    by any pipeline (CLI, tests, the server) get one.
    """

    __tablename__ = "approval_meta"

    approval_id: int = Field(primary_key=True)
    requested_by: str = Field(default="soc-agent", description="who raised the request; they may not approve it")
    required_role: str = Field(default="analyst", description="analyst | lead")
    expires_at: datetime
    escalated: bool = Field(default=False, description="expired once and went to the second approver tier")


class WebhookEventRow(SQLModel, table=True):
    """Every webhook delivery, accepted or not: the idempotency store and the record of refused attempts."""

    __tablename__ = "webhook_events"

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(index=True)
    event_key: str | None = Field(default=None, unique=True,
                                  description="provider:event id, set only for accepted events (idempotency)")
    signature: str | None = Field(default=None, unique=True,
                                  description="the accepted signature; a second use is a replay")
    received_at: datetime
    http_status: int
    outcome: str = Field(index=True, description="accepted | duplicate | rejected")
    reason: str = ""
    kind: str | None = Field(default=None, description="ticket_created | disposition | comment | ignored")
    ticket_id: str | None = None
    case_id: str | None = None
    size: int = 0
    queued_alert: str | None = Field(
        default=None, description="broker mode: the key of the alert a new ticket queued for a worker, until "
                                  "the ticket is settled (linked to the alert's case, or the alert opened none)")
    raised_by: str | None = Field(
        default=None, description="broker mode: the ticket's author, who raised any approval its queued alert "
                                  "leaves pending (and so may not approve it)")


class TicketLinkRow(SQLModel, table=True):
    """A ticket in a ticketing system and the case it belongs to."""

    __tablename__ = "ticket_links"

    provider: str = Field(primary_key=True)
    ticket_id: str = Field(primary_key=True)
    case_id: str = Field(index=True)
    created_at: datetime


class CaseCommentRow(SQLModel, table=True):
    """A comment on a case: from a ticket, or from the approval queue."""

    __tablename__ = "case_comments"

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True)
    source: str = Field(description="jira | servicenow | thehive | queue | analyst")
    author: str
    body: str
    created_at: datetime
    role: str | None = Field(default=None, description="the author's role, when a token named it (analyst "
                                                       "comments); None for ticket comments")


class TicketPostRow(SQLModel, table=True):
    """What the agent posted (or would post) back to a ticket, with its delivery status."""

    __tablename__ = "ticket_posts"

    id: int | None = Field(default=None, primary_key=True)
    provider: str
    ticket_id: str = Field(index=True)
    case_id: str | None = Field(default=None, index=True)
    kind: str = Field(description="note | status | decision")
    body: str
    status: str = Field(default="pending", description="pending | sent | failed")
    attempts: int = 0
    created_at: datetime
