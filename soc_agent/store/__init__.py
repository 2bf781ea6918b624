"""Persistence: SQLModel tables and the engine/session factory.

SQLite by default (WAL, one writer), any SQLAlchemy URL by configuration.
"""

from soc_agent.store.engine import Store
from soc_agent.store.tables import (
    ActionRow,
    AlertRow,
    ApprovalRow,
    CaseEntityRow,
    CaseEventRow,
    CaseRow,
    ContainmentRow,
    DeadLetterRow,
    DecisionRow,
    NoteRow,
    NotificationRow,
    TicketRow,
)

__all__ = [
    "ActionRow",
    "AlertRow",
    "ApprovalRow",
    "CaseEntityRow",
    "CaseEventRow",
    "CaseRow",
    "ContainmentRow",
    "DeadLetterRow",
    "DecisionRow",
    "NoteRow",
    "NotificationRow",
    "Store",
    "TicketRow",
]
