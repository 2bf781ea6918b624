"""Containment holds: which action owns each block, isolation, disabled account...

Every active containment made before this revision is backfilled with one hold
for the action that made it (``containments.action_id``), with the
containment's expiry.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10
"""

from alembic import op
from sqlmodel import SQLModel

import soc_agent.store.schema  # noqa: F401  (registers every table)

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    SQLModel.metadata.tables["containment_holds"].create(op.get_bind(), checkfirst=True)
    op.execute(
        "INSERT INTO containment_holds (effect, target, action_id, case_id, created_at, expires_at, active) "
        "SELECT c.effect, c.target, c.action_id, COALESCE(a.case_id, ''), c.created_at, c.expires_at, TRUE "
        "FROM containments c LEFT JOIN actions a ON a.id = c.action_id "
        "WHERE c.active AND c.action_id IS NOT NULL AND NOT EXISTS ("
        "SELECT 1 FROM containment_holds h WHERE h.action_id = c.action_id)"
    )


def downgrade() -> None:
    SQLModel.metadata.tables["containment_holds"].drop(op.get_bind(), checkfirst=True)
