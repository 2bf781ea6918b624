"""The decision point's table: approvals bound to one exact tool call.

Registered on ``SQLModel.metadata`` and listed in ``soc_agent.store.schema``;
created by ``make_engine`` and by migration ``0008_pdp``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel


class PdpApprovalRow(SQLModel, table=True):
    """One approval a ``require_approval`` decision asked for.

    ``status``: ``pending`` -> ``approved`` -> ``used`` (the one retry it let
    through), or ``rejected``; an item past ``expires_at`` is expired whatever
    its status says. ``call_hash`` is sha256 over (agent id, tool server and
    name, canonical JSON arguments): a retry with any other argument is
    another call and needs its own approval.
    """

    __tablename__ = "pdp_approvals"

    id: str = Field(primary_key=True, description="the decision id that asked for it")
    call_hash: str = Field(index=True)
    status: str = Field(default="pending", index=True)
    agent_id: str
    tenant: str = ""
    session_id: str
    tool: str = Field(description="server/name")
    call: str = Field(sa_type=Text, description="the call as JSON (secrets redacted): shown as data, escaped")
    reasons: str = Field(sa_type=Text, default="[]", description="JSON list of the decision's reasons")
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    used_at: datetime | None = None
    used_by: str | None = Field(default=None, description="the decision id of the retry it let through")
