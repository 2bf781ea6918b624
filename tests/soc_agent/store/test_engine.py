"""The store's buffered rows belong to the writer session's transaction."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlmodel import select

from soc_agent.store import CaseEntityRow, Store


def _entity(case_id: str, value: str) -> dict:
    return dict(case_id=case_id, key=f"ip:{value}", kind="ip", value=value, role="src",
                last_seen=datetime(2026, 1, 1, tzinfo=timezone.utc))


def test_a_query_through_the_writer_session_sees_buffered_rows(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    store.buffer(CaseEntityRow, _entity("c-1", "203.0.113.9"))
    # No explicit flush_buffers(): the query writes the buffer first.
    rows = store.session.exec(select(CaseEntityRow).where(CaseEntityRow.case_id == "c-1")).all()
    assert [r.value for r in rows] == ["203.0.113.9"]
    store.close()


def test_a_rollback_drops_buffered_rows_with_the_rest_of_the_transaction(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    store.buffer(CaseEntityRow, _entity("c-1", "203.0.113.9"))
    store.flush_buffers()
    store.buffer(CaseEntityRow, _entity("c-1", "203.0.113.10"))  # still only in memory
    store.session.rollback()
    store.buffer(CaseEntityRow, _entity("c-2", "198.51.100.7"))
    store.commit()
    with store.reader() as reader:
        kept = sorted((r.case_id, r.value) for r in reader.exec(select(CaseEntityRow)))
    assert kept == [("c-2", "198.51.100.7")], "neither the written nor the buffered row of the rolled-back work"
    store.close()


def test_rollback_drops_buffered_rows_even_when_the_connection_is_dead(tmp_path, monkeypatch):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    store.buffer(CaseEntityRow, _entity("c-1", "203.0.113.9"))

    def dead():
        raise ConnectionError("server closed the connection unexpectedly")

    monkeypatch.setattr(store.session, "rollback", dead)
    store.rollback()  # falls back to closing the session; the buffer goes either way
    monkeypatch.undo()
    store.commit()
    with store.reader() as reader:
        assert reader.exec(select(CaseEntityRow)).all() == []
    store.close()


# ---- a workdir made by an older release ----------------------------------------------------------

_CASE_WORK_COLUMNS = (("cases", "assignee"), ("case_comments", "role"), ("dead_letters", "retried_at"),
                      ("dead_letters", "retry_result"))


def test_a_workdir_from_before_case_work_opens_keeps_its_rows_and_gains_the_new_columns(tmp_path):
    import sqlite3

    from soc_agent.store import CaseRow

    path = tmp_path / "old.db"
    Store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:  # the schema as the release before case work left it, with a case in it
        for table, column in _CASE_WORK_COLUMNS:
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.execute("DROP TABLE case_events")
        db.execute("INSERT INTO cases (id, title, status, severity, opened_at, updated_at, alert_count, "
                   "duplicate_count, event_count, runs, reasons) VALUES ('case-old', 'kept', 'open', 'low', "
                   "'2026-01-01 00:00:00', '2026-01-01 00:00:00', 1, 0, 0, 1, '[]')")
    store = Store(f"sqlite:///{path}")
    case = store.session.exec(select(CaseRow)).one()
    assert (case.id, case.title, case.assignee) == ("case-old", "kept", None)
    store.close()
    with sqlite3.connect(path) as db:
        for table, column in _CASE_WORK_COLUMNS:
            assert column in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}, (table, column)
        assert db.execute("SELECT COUNT(*) FROM case_events").fetchone() == (0,)
