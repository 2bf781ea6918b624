"""The learned triage model: training examples and versioned model artefacts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from alembic import op
from sqlmodel import SQLModel

import soc_agent.store.schema  # noqa: F401  (registers every table)

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TABLES = ("learning_examples", "learning_models")


def upgrade() -> None:
    for name in _TABLES:
        SQLModel.metadata.tables[name].create(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    for name in reversed(_TABLES):
        SQLModel.metadata.tables[name].drop(op.get_bind(), checkfirst=True)
