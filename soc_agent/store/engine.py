"""The store: one engine and one writer session for the embedded process."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine

from soc_agent import audit as _audit  # noqa: F401  (registers the audit table)
from soc_agent.store import tables as _tables  # noqa: F401  (registers the tables)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers (the CLI, the approval page) read while the pipeline writes;
    # NORMAL sync is durable across process crashes, which is what WAL needs.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder and pragmas."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    SQLModel.metadata.create_all(engine)
    return engine


class Store:
    """The engine plus the writer session the pipeline batches its rows in.

    The pipeline adds rows to ``session`` and calls ``commit()`` at batch
    boundaries and always before an action is executed, so an intent is
    durable before the responder is called.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        # Autoflush off: the pipeline flushes at the points where it queries what it added.
        self.session = Session(self.engine, expire_on_commit=False, autoflush=False)

    def commit(self) -> None:
        """Make everything added so far durable."""
        self.session.commit()

    def reader(self) -> Session:
        """A fresh session for read-only queries (CLI, reports)."""
        return Session(self.engine)

    def close(self) -> None:
        """Commit what is pending and release the connection."""
        self.session.commit()
        self.session.close()
        self.engine.dispose()
