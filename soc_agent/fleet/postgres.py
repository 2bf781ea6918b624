"""Postgres for a fleet: the LangGraph checkpointer and throwaway databases.

The store and the checkpoints share one database, named by the one URL
``SOC_AGENT_DATABASE_URL=postgresql+psycopg://user@host/db``. SQLAlchemy
wants the ``+psycopg`` driver suffix; psycopg itself wants a plain
``postgresql://`` URL, and ``psycopg_url`` converts.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from langgraph.checkpoint.postgres import PostgresSaver
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from soc_agent.checkpoint import serializer

CHECKPOINT_SETUP_LOCK = 0x50C_C4EC
"""Advisory lock so workers starting together run the checkpointer's migrations once."""


def psycopg_url(url: str) -> str:
    """``postgresql+psycopg://...`` (SQLAlchemy) -> ``postgresql://...`` (libpq)."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def postgres_checkpointer(url: str, max_size: int = 4) -> PostgresSaver:
    """A ``PostgresSaver`` on a small connection pool, with the strict serializer.

    A pool rather than one connection: after a Postgres restart the pool's
    check hands out a fresh connection, where a single connection would stay
    broken for the life of the worker. ``saver.conn.close()`` closes the pool.
    """
    pool = ConnectionPool(
        psycopg_url(url), min_size=1, max_size=max_size, open=True,
        # PostgresSaver needs autocommit and dict rows; prepare_threshold=None because a
        # restarted server forgets prepared statements the client still believes in.
        kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": None},
        check=ConnectionPool.check_connection,
    )
    saver = PostgresSaver(pool, serde=serializer())
    _setup_once(saver, pool)
    return saver


def _setup_once(saver: PostgresSaver, pool: ConnectionPool, timeout_s: float = 120.0) -> None:
    """Run the checkpointer's migrations unless done, one process at a time.

    The lock is *polled* with pg_try_advisory_lock: a session blocked in
    pg_advisory_lock keeps a transaction id that the migrations' CREATE INDEX
    CONCURRENTLY waits for, so two workers starting together would wait on
    each other forever, unseen by the deadlock detector.
    """
    latest = len(saver.MIGRATIONS) - 1
    deadline = time.monotonic() + timeout_s
    with pool.connection() as conn:
        while True:
            row = conn.execute("SELECT to_regclass('checkpoint_migrations') AS t").fetchone()
            if row["t"] is not None:
                done = conn.execute("SELECT max(v) AS v FROM checkpoint_migrations").fetchone()["v"]
                if done is not None and done >= latest:
                    return
            if conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (CHECKPOINT_SETUP_LOCK,)).fetchone()["ok"]:
                try:
                    saver.setup()
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (CHECKPOINT_SETUP_LOCK,))
                return
            if time.monotonic() > deadline:
                raise TimeoutError("another process has been migrating the checkpoint tables for too long")
            time.sleep(0.2)


def upgrade_schema(db_url: str, revision: str = "head") -> None:
    """Run the Alembic migrations (``soc-agent db upgrade``) against ``db_url``."""
    from alembic import command
    from alembic.config import Config

    from soc_agent.config import REPO_ROOT

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
