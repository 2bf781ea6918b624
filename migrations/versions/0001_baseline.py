"""Baseline: every table the SQLModel metadata declares.

The baseline is the same idempotent ``create_all`` the store runs at start-up
(``checkfirst``), so a database a worker already created tables in upgrades
cleanly. Every later schema change gets its own revision with explicit
``op.*`` calls (``alembic -c alembic.ini revision --autogenerate -m ...``).

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from alembic import op
from sqlmodel import SQLModel

import soc_agent.fleet.tables  # noqa: F401
import soc_agent.store.schema  # noqa: F401  (registers every table)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    SQLModel.metadata.create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    SQLModel.metadata.drop_all(op.get_bind())
