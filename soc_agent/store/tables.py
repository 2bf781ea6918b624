"""SQLModel tables: the durable record of everything the agent saw and did.

JSON columns are stored as text (canonical JSON) so the same schema works on
SQLite and Postgres without dialect types.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class AlertRow(SQLModel, table=True):
    """One alert or raw event as received (normalised payload kept)."""

    __tablename__ = "alerts"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(index=True, description="source:id; a re-sent alert has the same key")
    alert_id: str = Field(index=True, description="the id the source gave it")
    source: str
    kind: str = Field(description="alert | event")
    rule_id: str = Field(index=True)
    case_id: str | None = Field(default=None, index=True)
    fingerprint: str = Field(index=True)
    duplicate_of: str | None = Field(default=None, description="key of the first alert with this fingerprint")
    ts: datetime
    received_at: datetime
    payload: str = Field(description="the normalised alert as JSON")
    label: str | None = Field(default=None, description="analyst disposition, when known")


class CaseRow(SQLModel, table=True):
    """A case and its latest verdict and decision."""

    __tablename__ = "cases"

    id: str = Field(primary_key=True)
    title: str = ""
    incident_class: str | None = Field(default=None, index=True)
    playbook: str | None = None
    status: str = Field(default="open", index=True, description="open | pending_approval | contained | closed")
    verdict: str | None = None
    confidence: float | None = None
    severity: str = "informational"
    opened_at: datetime
    updated_at: datetime
    alert_count: int = 0
    duplicate_count: int = 0
    event_count: int = 0
    runs: int = Field(default=0, description="full graph runs so far")
    action: str | None = None
    decision: str | None = None
    reasons: str = Field(default="[]", description="JSON list of the guard's reasons")
    label: str | None = Field(default=None, description="analyst disposition, when known")
    assignee: str | None = Field(default=None, description="the person working the case, as a person named them")


class CaseEventRow(SQLModel, table=True):
    """A person's work on a case: a disposition (close), a reopening or an assignment.

    Append-only: reopening a case adds a row, it never removes the close. Comments
    live in ``case_comments`` (with tickets' and the queue's); the case history is both.
    """

    __tablename__ = "case_events"

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True)
    kind: str = Field(description="close | reopen | assign")
    who: str = Field(description="the identity that did it, as the tokens file or the ticket names it")
    role: str = Field(description="that identity's role at the time (viewer | analyst | lead | platform)")
    source: str = Field(default="analyst", description="where it came from: analyst (CLI, API, web) or a ticket "
                                                       "provider (jira | servicenow | thehive)")
    created_at: datetime
    disposition: str | None = Field(default=None, description="close: true_positive | benign_positive | "
                                                              "false_positive")
    assignee: str | None = Field(default=None, description="assign: the new assignee")
    reason: str = Field(default="", description="the person's words, stored as given (escaped on output)")
    status_before: str | None = Field(default=None, description="close: the status the case had, which "
                                                                "reopening restores")


class CaseEntityRow(SQLModel, table=True):
    """An entity that belongs to a case, with when it was last seen there."""

    __tablename__ = "case_entities"

    case_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True, index=True)
    kind: str
    value: str
    role: str | None = None
    last_seen: datetime


class DecisionRow(SQLModel, table=True):
    """Every guard decision, with its reasons (JSON list)."""

    __tablename__ = "decisions"

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True)
    run: int
    action: str | None
    tier: str | None
    target: str | None
    outcome: str = Field(index=True)
    mode: str
    reasons: str
    created_at: datetime


class ActionRow(SQLModel, table=True):
    """An action's intent and result; the idempotency key makes replays no-ops."""

    __tablename__ = "actions"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True, description="action|target|params|case")
    case_id: str = Field(index=True)
    name: str
    tier: str
    capability: str
    target_kind: str | None = None
    target_value: str | None = None
    params: str = "{}"
    status: str = Field(
        default="intent", index=True,
        description="intent | done | failed | recorded (shadow) | rolled_back | expired",
    )
    rollback: str | None = None
    result: str = "{}"
    created_at: datetime
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    approved_by: str | None = None


class ContainmentRow(SQLModel, table=True):
    """Live effect of a local responder: a block, an isolation, a disabled account...

    One row per (effect, target); ``active`` goes false on rollback or expiry.
    """

    __tablename__ = "containments"

    effect: str = Field(primary_key=True, description="blocked_ip, isolated_host, disabled_account, ...")
    target: str = Field(primary_key=True)
    active: bool = True
    action_id: int | None = None
    created_at: datetime
    expires_at: datetime | None = Field(default=None, index=True)
    detail: str = "{}"


class ContainmentHoldRow(SQLModel, table=True):
    """Which action owns a containment: one row per action that created or extended it.

    A containment is active while at least one of its holds is; its ``expires_at`` is the latest
    of its active holds' (none when one has no TTL). An action that found the effect already in
    place for at least as long owns nothing and has no hold. A rollback or an expiry releases
    only the action's own hold; the containment is lifted with its last hold.
    """

    __tablename__ = "containment_holds"

    id: int | None = Field(default=None, primary_key=True)
    effect: str = Field(index=True)
    target: str = Field(index=True)
    action_id: int = Field(unique=True)
    case_id: str = Field(index=True)
    created_at: datetime
    expires_at: datetime | None = None
    active: bool = Field(default=True, index=True)
    released_at: datetime | None = None
    released_why: str | None = Field(default=None, description="rolled_back | expired | lifted")


class TicketRow(SQLModel, table=True):
    """A ticket opened by the local ticket responder."""

    __tablename__ = "tickets"

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True)
    title: str
    status: str = "open"
    created_at: datetime
    body: str = ""


class NotificationRow(SQLModel, table=True):
    """A notification sent by the local notifier."""

    __tablename__ = "notifications"

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True)
    channel: str = "soc"
    message: str
    created_at: datetime


class NoteRow(SQLModel, table=True):
    """The latest case notes, as JSON and rendered markdown."""

    __tablename__ = "notes"

    case_id: str = Field(primary_key=True)
    notes_json: str
    markdown: str
    updated_at: datetime


class ApprovalRow(SQLModel, table=True):
    """A paused graph waiting for a person: the queue item."""

    __tablename__ = "approvals"

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True)
    thread_id: str = Field(unique=True)
    action: str
    tier: str
    reasons: str
    status: str = Field(default="pending", index=True, description="pending | approved | rejected | expired")
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    comment: str | None = None


class ApprovalVoteRow(SQLModel, table=True):
    """One person's approval of a queue item that needs two (the two-person rule).

    The first approval waits here (who, when, comment, any edit) until a second,
    different approver decides; one row per (approval, approver).
    """

    __tablename__ = "approval_votes"
    __table_args__ = (UniqueConstraint("approval_id", "approver", name="uq_approval_votes_approver"),)

    id: int | None = Field(default=None, primary_key=True)
    approval_id: int = Field(index=True)
    approver: str
    role: str
    comment: str | None = None
    action: str | None = Field(default=None, description="the action the approver edited it to, if any")
    params: str = Field(default="{}", description="JSON params the approver edited, if any")
    created_at: datetime


class DeadLetterRow(SQLModel, table=True):
    """Input that could not be processed, with the reason; nothing is silently dropped."""

    __tablename__ = "dead_letters"

    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime
    source: str = Field(description="the input name (file, stdin, connector)")
    line_no: int | None = None
    reason: str
    raw: str = Field(description="the input, truncated to 64 KiB")
    raw_size: int
    retried_at: datetime | None = Field(default=None, description="when the line was re-run (at most once)")
    retry_result: str | None = Field(default=None, description="what came of the re-run: the alert or case it "
                                                               "made, or why it failed again")
