"""Alembic environment: the target is the schema's one metadata, with every soc-agent table registered."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

import soc_agent.fleet.tables  # noqa: F401  (the inbox and resumes, which the schema leaves to the fleet)
from soc_agent.store import schema

config = context.config
target_metadata = schema.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("SOC_AGENT_DATABASE_URL")
    if not url:
        raise SystemExit("no database: set SOC_AGENT_DATABASE_URL (postgresql+psycopg://...)")
    return url


def run_migrations_offline() -> None:
    """Emit SQL instead of running it (``alembic upgrade head --sql``)."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations under an advisory lock, so concurrent upgrades queue up."""
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SELECT pg_advisory_lock(85769969)")
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
