"""TTL expiry from exactly one leader, elected through a Postgres advisory lock.

Every worker runs a ``Scheduler``; only the one holding the session-level
advisory lock ``LEADER_LOCK_KEY`` lifts expired blocks. The lock lives as
long as the leader's connection: a leader that dies or loses Postgres loses
the lock with its connection, and the next worker to try becomes leader.
Before each round the leader re-checks that its connection (so its lock) is
still alive, so a leader cut off by a Postgres restart steps down instead of
acting on a lock it no longer holds. On SQLite (one process) the process is
always the leader.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import psycopg

from soc_agent.fleet.postgres import psycopg_url

__all__ = ["LEADER_LOCK_KEY", "LeaderLock", "Scheduler"]

LEADER_LOCK_KEY = 0x50C_1EAD
"""The advisory lock whose holder is the fleet's scheduler."""

log = logging.getLogger(__name__)


class LeaderLock:
    """A session-level advisory lock on a dedicated connection."""

    def __init__(self, db_url: str, key: int = LEADER_LOCK_KEY) -> None:
        self.db_url = db_url
        self.key = key
        self._conn: psycopg.Connection | None = None

    @property
    def is_postgres(self) -> bool:
        """Only Postgres has a fleet; SQLite's single process leads alone."""
        return self.db_url.startswith("postgresql")

    def try_lead(self) -> bool:
        """True while this process holds the lock (taking it if it is free)."""
        if not self.is_postgres:
            return True
        try:
            if self._conn is not None:
                # Still our session? Then the lock is still ours.
                self._conn.execute("SELECT 1")
                return True
            conn = psycopg.connect(psycopg_url(self.db_url), autocommit=True, connect_timeout=5)
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]
            if got:
                self._conn = conn
                return True
            conn.close()
            return False
        except psycopg.Error:
            self.release()
            return False

    def release(self) -> None:
        """Step down (closing the connection releases the lock)."""
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None


class Scheduler:
    """Runs ``job`` (TTL expiry) every ``interval_s`` on the leader only."""

    def __init__(self, db_url: str, job: Callable[[], int], interval_s: float = 5.0) -> None:
        self.lock = LeaderLock(db_url)
        self.job = job
        self.interval_s = interval_s
        self._next = 0.0
        self.rounds = 0
        """Rounds this process ran as leader."""

    def tick(self, now: float | None = None) -> int | None:
        """Run the job if it is due and we lead; returns what it did, or None when it did not run."""
        now = time.monotonic() if now is None else now
        if now < self._next:
            return None
        self._next = now + self.interval_s
        if not self.lock.try_lead():
            return None
        self.rounds += 1
        return self.job()

    def close(self) -> None:
        """Release leadership."""
        self.lock.release()
