"""Approvals in a fleet: the resume each decided approval owes, and the worker that ran it.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-07
"""

from alembic import op
from sqlmodel import SQLModel

import soc_agent.fleet.tables  # registers approval_resumes
import soc_agent.store.schema  # noqa: F401  (registers every table)

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None

_TABLES = ("approval_resumes",)


def upgrade() -> None:
    for name in _TABLES:
        SQLModel.metadata.tables[name].create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    for name in reversed(_TABLES):
        SQLModel.metadata.tables[name].drop(op.get_bind(), checkfirst=True)
