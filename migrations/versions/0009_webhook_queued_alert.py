"""Broker mode's ticket links as data: ``webhook_events.queued_alert`` and ``raised_by``.

A new ticket whose alert the server queued for the fleet is linked to the
alert's case once a worker has filed it. Until now the alert key and the
ticket's author were packed into ``reason`` (``queued for a worker on
partition N; raised by <author>; alert <key>``) and parsed back; they are now
two nullable columns. Rows still waiting to be linked are filled from their
``reason`` here, so tickets queued before the upgrade are linked as before.
A process that opened the store first (``add_missing_columns``) may already
have added the columns: each is added only when missing, and the fill runs
either way.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TABLE = "webhook_events"
_COLUMNS = (sa.Column("queued_alert", sa.String(), nullable=True), sa.Column("raised_by", sa.String(), nullable=True))
_QUEUED, _AUTHOR, _KEY = "queued for a worker", "; raised by ", "; alert "
"""The old ``reason`` layout: prefix, optional author, then the alert key (last: it is free text)."""


def _columns() -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(_TABLE)}


def upgrade() -> None:
    present = _columns()
    for column in _COLUMNS:
        if column.name not in present:
            op.add_column(_TABLE, column)
    bind = op.get_bind()
    waiting = bind.execute(sa.text(
        f"SELECT id, reason FROM {_TABLE} WHERE outcome = 'accepted' AND kind = 'created' AND case_id IS NULL "
        "AND queued_alert IS NULL AND reason LIKE :queued"), {"queued": _QUEUED + "%"}).all()
    for event_id, reason in waiting:
        if _KEY not in reason:
            continue  # an alert id too long to link: there is nothing to settle
        head, key = reason.split(_KEY, 1)
        author = head.split(_AUTHOR, 1)[1] if _AUTHOR in head else None
        bind.execute(sa.text(f"UPDATE {_TABLE} SET queued_alert = :key, raised_by = :author WHERE id = :id"),
                     {"key": key, "author": author or None, "id": event_id})


def downgrade() -> None:
    present = _columns()
    for column in reversed(_COLUMNS):
        if column.name in present:
            op.drop_column(_TABLE, column.name)
