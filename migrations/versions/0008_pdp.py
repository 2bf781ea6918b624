"""The decision point's approvals: ``pdp_approvals`` (one row per approval bound to an exact call).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from alembic import op
from sqlmodel import SQLModel

import soc_agent.store.schema  # noqa: F401  (registers every table)

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    SQLModel.metadata.tables["pdp_approvals"].create(op.get_bind(), checkfirst=True)
    for index in SQLModel.metadata.tables["pdp_approvals"].indexes:
        index.create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    SQLModel.metadata.tables["pdp_approvals"].drop(op.get_bind(), checkfirst=True)
