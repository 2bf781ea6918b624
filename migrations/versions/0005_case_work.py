"""Case work by people: dispositions, reopenings and assignments; dead-letter retries.

Adds the ``case_events`` table, ``cases.assignee``, ``case_comments.role`` and
``dead_letters.retried_at``/``retry_result``. Every new column is nullable, so
existing rows keep working (no assignee, no role, never retried). A process
that opened the store first (``add_missing_columns``) may already have added
them: each is added only when missing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlmodel import SQLModel

import soc_agent.store.schema  # noqa: F401  (registers every table)

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TABLES = ("case_events",)
_COLUMNS = (
    ("cases", sa.Column("assignee", sa.String(), nullable=True)),
    ("case_comments", sa.Column("role", sa.String(), nullable=True)),
    ("dead_letters", sa.Column("retried_at", sa.DateTime(), nullable=True)),
    ("dead_letters", sa.Column("retry_result", sa.String(), nullable=True)),
)


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    for name in _TABLES:
        SQLModel.metadata.tables[name].create(op.get_bind(), checkfirst=True)
    for table, column in _COLUMNS:
        if column.name not in _columns(table):
            op.add_column(table, column)


def downgrade() -> None:
    for table, column in reversed(_COLUMNS):
        if column.name in _columns(table):
            op.drop_column(table, column.name)
    for name in reversed(_TABLES):
        SQLModel.metadata.tables[name].drop(op.get_bind(), checkfirst=True)
