"""The store: one engine and one writer session for the embedded process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, inspect
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers (the CLI, the approval page) read while the pipeline writes;
    # NORMAL sync is durable across process crashes, which is what WAL needs.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the tables registered on ``SQLModel.metadata`` created.

    SQLite files get their folder and pragmas. Import ``soc_agent.store.schema``
    first for every wing's tables: the store does not import the wings above it.
    """
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    elif url.startswith("postgresql"):
        return _postgres_engine(url)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    with engine.begin() as conn:
        SQLModel.metadata.create_all(conn)
        add_missing_columns(conn)
    return engine


def add_missing_columns(conn) -> list[str]:
    """Add the nullable columns a newer release declares to tables an older one created.

    ``create_all`` creates missing tables but never alters existing ones, so a
    workdir made by an older release would fail on its first query of a new
    column. Only nullable columns are added (old rows read as NULL, which every
    such column means "not known"); anything else is a migration's job. Returns
    ``table.column`` for each column added. The Alembic revision that declares
    the same columns checks for them first, so either may run first.
    """
    inspector = inspect(conn)
    existing_tables = set(inspector.get_table_names())
    added = []
    for table in SQLModel.metadata.sorted_tables:
        if table.name not in existing_tables:
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present or not column.nullable or column.primary_key:
                continue
            preparer = conn.dialect.identifier_preparer
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {preparer.quote(table.name)} "
                                 f"ADD COLUMN {preparer.quote(column.name)} {kind}")
            added.append(f"{table.name}.{column.name}")
    return added


_SCHEMA_LOCK_KEY = 0x50C_5C4E
"""Advisory lock that lets one of several starting workers create the tables."""


def _postgres_engine(url: str) -> Engine:
    # pre_ping and recycle: a worker survives a Postgres restart by getting a
    # fresh connection instead of failing on a dead one from the pool.
    engine = create_engine(url, pool_pre_ping=True, pool_recycle=1800, pool_size=5, max_overflow=5,
                           connect_args={"connect_timeout": 10, "application_name": "soc-agent"})
    # Alembic owns the schema (``soc-agent db upgrade``); its baseline is this same
    # idempotent create_all, so a process started before the upgrade still finds its
    # tables. The lock keeps workers that start together from racing on CREATE TABLE.
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_KEY})")
        SQLModel.metadata.create_all(conn)
        add_missing_columns(conn)
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

        self._buffers: dict[type[SQLModel], list[dict[str, Any]]] = {}
        self._after_commit: list[Callable[[], None]] = []
        # Buffered rows belong to the session's transaction: any query through it sees them (they are
        # written first), and a rollback drops those not yet written with the rest of its work.
        event.listen(self.session, "do_orm_execute", lambda _state: self.flush_buffers())
        event.listen(self.session, "after_rollback", lambda _session: self._buffers.clear())

    def buffer(self, table: type[SQLModel], row: dict[str, Any]) -> None:
        """Queue an insert-only row (alerts, case entities); written in one batch at the next flush,
        which comes before any query through ``session`` and before every commit.

        The hot path writes thousands of these a second; building ORM objects
        for them costs more than the rest of intake together.
        """
        self._buffers.setdefault(table, []).append(row)

    def flush_buffers(self) -> None:
        """Write queued rows in the session's transaction (before any query that must see them)."""
        if not self._buffers:
            return
        connection = self.session.connection()
        for table, rows in self._buffers.items():
            if rows:
                connection.execute(insert(table.__table__), rows)
        self._buffers.clear()

    def upsert(self, table: type[SQLModel], row: dict[str, Any]) -> None:
        """Insert ``row``, or overwrite the row with its primary key, in the session's transaction.

        One statement instead of a lookup, an ORM object and a flush; only for
        tables the writer session never holds as ORM objects (e.g. notes).
        """
        connection = self.session.connection()
        dialect = connection.dialect.name
        keys = [c.name for c in table.__table__.primary_key.columns]
        changed = {k: v for k, v in row.items() if k not in keys}
        if dialect in ("sqlite", "postgresql"):
            dialect_insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
            stmt = dialect_insert(table.__table__).values(**row).on_conflict_do_update(index_elements=keys,
                                                                                      set_=changed)
        elif dialect in ("mysql", "mariadb"):
            stmt = mysql_insert(table.__table__).values(**row).on_duplicate_key_update(**changed)
        else:
            self.session.merge(table(**row))
            return
        connection.execute(stmt)

    def rollback(self) -> None:
        """Drop the transaction's work, buffered rows included; a dead connection is closed instead
        (the pool replaces it)."""
        # Cleared first: after_rollback does not run when the rollback itself fails.
        self._buffers.clear()
        try:
            self.session.rollback()
        except Exception:  # noqa: BLE001 - a dead connection
            self.session.close()

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` after every commit of the writer session (e.g. files mirroring rows)."""
        self._after_commit.append(hook)

    def commit(self) -> None:
        """Make everything added and queued so far durable, then run the after-commit hooks."""
        self.flush_buffers()
        self.session.commit()
        for hook in self._after_commit:
            hook()

    def reader(self) -> Session:
        """A fresh session for read-only queries (CLI, reports)."""
        return Session(self.engine)

    def close(self) -> None:
        """Commit what is pending and release the connection."""
        self.commit()
        self.session.close()
        self.engine.dispose()
