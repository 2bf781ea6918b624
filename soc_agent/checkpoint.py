"""The LangGraph checkpointer: SQLite in embedded mode, Postgres at scale, strict deserialization.

``make_checkpointer(settings)`` picks the backend from the one database URL:
a ``postgresql...`` store URL keeps checkpoints in the same Postgres
database (``soc_agent.fleet.postgres``); anything else uses the SQLite file
in the workdir.

Only this project's own types (and LangGraph's safe built-ins) are revived
from a checkpoint, so a tampered checkpoint database cannot construct
arbitrary objects.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver

from soc_agent import types as t
from soc_agent.config import Settings

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
        from soc_agent.fleet.postgres import postgres_checkpointer  # psycopg only when asked for

        return postgres_checkpointer(settings.db_url)
    return sqlite_checkpointer(settings.checkpoint_path)
