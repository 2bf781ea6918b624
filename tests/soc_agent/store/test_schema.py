"""The schema module: the migrations at head build exactly the tables it lists."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

import soc_agent.fleet.tables  # noqa: F401  (the fleet's tables, which the schema leaves to the fleet)
from soc_agent.fleet.postgres import upgrade_schema
from soc_agent.store import schema
from tests.soc_agent.fleet.fleet_kit import pg_url  # noqa: F401  (fixture)

# LangGraph's checkpoint tables share the database and come from its own migrations, not from ours.
_LANGGRAPH = ("checkpoints", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations")


def _foreign(diff) -> bool:
    kind, item = diff[0], diff[1]
    table = item if kind.endswith("_table") else getattr(item, "table", None)
    return table is not None and table.name in _LANGGRAPH


def test_the_migrations_at_head_build_every_table_the_schema_lists(pg_url):  # noqa: F811
    upgrade_schema(pg_url)
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    engine.dispose()
    assert [d for d in diff if not (isinstance(d, tuple) and _foreign(d))] == []
