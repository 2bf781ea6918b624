"""Multi-writer safety on Postgres: the audit chain, the scheduler's leader, the migrations."""

from __future__ import annotations

import threading
from pathlib import Path

from fleet_kit import pg_url  # noqa: F401  (fixture)
from sqlalchemy import create_engine, inspect, text
from sqlmodel import Session

from soc_agent.audit import AuditLog, verify
from soc_agent.fleet.postgres import upgrade_schema
from soc_agent.fleet.scheduler import LeaderLock, Scheduler
from soc_agent.store.engine import make_engine


def test_concurrent_writers_keep_one_unbroken_chain(pg_url):
    make_engine(pg_url).dispose()  # tables
    writers, per_writer = 4, 60
    errors: list[BaseException] = []

    def write(n: int) -> None:
        # Each writer is a process of its own in a fleet: its own engine and its own AuditLog,
        # whose head is stale the moment another writer appends.
        engine = create_engine(pg_url)
        log = AuditLog(engine)
        try:
            for i in range(per_writer):
                if i % 2:
                    log.append("test.own", {"writer": n, "i": i})
                else:
                    with Session(engine) as session:  # inside the caller's transaction
                        log.append("test.session", {"writer": n, "i": i}, session=session)
                        log.append("test.session", {"writer": n, "i": i, "second": True}, session=session)
                        session.commit()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    engine = create_engine(pg_url)
    result = verify(engine)
    assert result.ok, result.reason
    assert result.checked == writers * (per_writer // 2) * 3
    engine.dispose()


def test_a_rolled_back_append_leaves_no_gap(pg_url):
    engine = make_engine(pg_url)
    log = AuditLog(engine)
    log.append("a", {})
    with Session(engine) as session:
        log.append("rolled.back", {}, session=session)
        session.rollback()
    AuditLog(engine).append("other.writer", {})
    log.append("b", {})
    assert verify(engine).checked == 3
    engine.dispose()


def test_only_one_scheduler_leads_and_another_takes_over(pg_url):
    first, second = LeaderLock(pg_url), LeaderLock(pg_url)
    assert first.try_lead() and not second.try_lead()
    assert first.try_lead(), "a leader stays leader"
    first.release()
    assert second.try_lead()
    second.release()


def test_the_scheduler_runs_its_job_on_the_leader_only(pg_url):
    runs = {"a": 0, "b": 0}
    a = Scheduler(pg_url, lambda: runs.__setitem__("a", runs["a"] + 1) or 0, interval_s=0)
    b = Scheduler(pg_url, lambda: runs.__setitem__("b", runs["b"] + 1) or 0, interval_s=0)
    for _ in range(3):
        a.tick()
        b.tick()
    assert runs == {"a": 3, "b": 0}
    a.close()
    b.tick()
    assert runs["b"] == 1
    b.close()


def test_alembic_upgrade_creates_the_schema_and_is_repeatable(pg_url):
    upgrade_schema(pg_url)
    upgrade_schema(pg_url)  # a second upgrade (another worker, a re-run) is a no-op
    engine = create_engine(pg_url)
    tables = set(inspect(engine).get_table_names())
    assert {"cases", "alerts", "actions", "audit", "approvals", "fleet_inbox", "alembic_version",
            "learning_examples", "learning_models"} <= tables
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == _head_revision()
    engine.dispose()


def test_migration_0005_adds_case_work_to_a_database_at_0004_and_keeps_its_rows(pg_url):
    upgrade_schema(pg_url, "0004")
    engine = create_engine(pg_url)
    with engine.begin() as conn:  # 0001's baseline made today's tables: take the case-work columns out again
        for table, column in (("cases", "assignee"), ("case_comments", "role"), ("dead_letters", "retried_at"),
                              ("dead_letters", "retry_result")):
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(text("DROP TABLE case_events"))
        conn.execute(text("INSERT INTO cases (id, title, status, severity, opened_at, updated_at, alert_count, "
                          "duplicate_count, event_count, runs, reasons) VALUES ('case-old', 'kept', 'open', 'low', "
                          "now(), now(), 1, 0, 0, 1, '[]')"))
    upgrade_schema(pg_url)
    inspector = inspect(engine)
    assert "assignee" in {c["name"] for c in inspector.get_columns("cases")}
    assert {"retried_at", "retry_result"} <= {c["name"] for c in inspector.get_columns("dead_letters")}
    assert "role" in {c["name"] for c in inspector.get_columns("case_comments")}
    assert "case_events" in inspector.get_table_names()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT title, assignee FROM cases")).one() == ("kept", None)
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == _head_revision()
    engine.dispose()


def _head_revision() -> str:
    """The newest migration in migrations/versions (what an upgrade to head must reach)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    root = Path(__file__).resolve().parents[3]
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    return ScriptDirectory.from_config(config).get_current_head()
