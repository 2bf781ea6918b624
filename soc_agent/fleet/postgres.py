"""Postgres for a fleet: schema upgrades and throwaway databases (the checkpointer is in ``soc_agent.checkpoint``).

The store and the checkpoints share one database, named by the one URL
``SOC_AGENT_DATABASE_URL=postgresql+psycopg://user@host/db``. SQLAlchemy
wants the ``+psycopg`` driver suffix; psycopg itself wants a plain
``postgresql://`` URL, and ``psycopg_url`` converts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from soc_agent.checkpoint import postgres_checkpointer, psycopg_url
from soc_agent.config import REPO_ROOT

__all__ = ["postgres_checkpointer", "psycopg_url", "temporary_database", "upgrade_schema"]


def upgrade_schema(db_url: str, revision: str = "head") -> None:
    """Run the Alembic migrations (``soc-agent db upgrade``) against ``db_url``."""
    # deferred: alembic only for `db upgrade`; the fleet's scheduler (and through it the server and the broker
    # publisher) imports this module
    from alembic import command
    from alembic.config import Config

    # The checkpoint tables are LangGraph's own migrations, run here too so `db upgrade` is complete.
    postgres_checkpointer(db_url).conn.close()
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    # configparser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    command.upgrade(config, revision)


@contextmanager
def temporary_database(admin_url: str = "postgresql://postgres@127.0.0.1:5432/test",
                       prefix: str = "socagent_test") -> Iterator[str]:
    """Create a fresh database, yield its SQLAlchemy URL, drop it (with its connections) after.

    For tests and the benchmark: each gets a database of its own.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg_url(admin_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
