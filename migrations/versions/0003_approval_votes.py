"""The two-person rule: the first of two approvals waits in ``approval_votes``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10
"""

from alembic import op
from sqlmodel import SQLModel

import soc_agent.store.schema  # noqa: F401  (registers every table)

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLES = ("approval_votes",)


def upgrade() -> None:
    for name in _TABLES:
        SQLModel.metadata.tables[name].create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    for name in reversed(_TABLES):
        SQLModel.metadata.tables[name].drop(op.get_bind(), checkfirst=True)
