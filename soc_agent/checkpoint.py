"""The LangGraph checkpointer: SQLite in embedded mode, Postgres at scale, strict deserialization.

``make_checkpointer(settings)`` picks the backend from the one database URL:
a ``postgresql...`` store URL keeps checkpoints in the same Postgres
database (``postgres_checkpointer``); anything else uses the SQLite file
in the workdir.

Only this project's own types (and LangGraph's safe built-ins) are revived
from a checkpoint, so a tampered checkpoint database cannot construct
arbitrary objects.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver

from soc_agent import types as t
from soc_agent.config import Settings

if TYPE_CHECKING:
    from langgraph.checkpoint.postgres import PostgresSaver

ALLOWED_TYPES = (
    t.Alert, t.Entity, t.EntityKind, t.Severity, t.VendorVerdict, t.VendorEvidence, t.Evidence, t.Assessment,
    t.Verdict, t.Case, t.ProposedAction, t.Tier, t.Decision, t.Outcome, t.RunMode,
)


def serializer() -> JsonPlusSerializer:
    """A serializer that revives only the allow-listed types."""
    return JsonPlusSerializer(allowed_msgpack_modules=ALLOWED_TYPES)


def sqlite_checkpointer(path: Path) -> SqliteSaver:
    """A SQLite checkpointer at ``path`` (WAL, shared across threads of this process)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return SqliteSaver(conn, serde=serializer())


def make_checkpointer(settings: Settings) -> BaseCheckpointSaver:
    """The checkpointer for ``settings.db_url``: Postgres when the store is on Postgres, else SQLite.

    Both use ``serializer()``; the returned saver's ``conn`` has ``close()``.
    """
    if settings.db_url.startswith("postgresql"):
        return postgres_checkpointer(settings.db_url)
    return sqlite_checkpointer(settings.checkpoint_path)


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
    # deferred: psycopg and its pool load only for a Postgres checkpointer (fleet mode), not for SQLite
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

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


def _setup_once(saver, pool, timeout_s: float = 120.0) -> None:
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
