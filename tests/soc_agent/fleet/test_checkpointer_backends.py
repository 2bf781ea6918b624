"""The same pipeline on SQLite and on Postgres, chosen by one URL; checkpoints survive a restart."""

from __future__ import annotations

import pytest
from fleet_kit import pg_url  # noqa: F401  (fixture)
from sqlmodel import select

from soc_agent.checkpoint import ALLOWED_TYPES, make_checkpointer
from soc_agent.config import Settings
from soc_agent.pipeline import Pipeline
from soc_agent.store import ApprovalRow, CaseRow
from tests.conftest import make_alert

CROWN_JEWEL = make_alert("malware_detected", [("host", "dc02.corp.example", "dst"),
                                              ("file_hash", "c3afd733d28951f6fbffb8b0ddb87d3179c045022929dc79bd60da518f5d5524",
                                               "file")], alert_id="dc-1", severity="critical")


@pytest.fixture(params=["sqlite", "postgres"])
def backend_settings(request, tmp_path) -> Settings:
    """Settings for each backend: the default SQLite file, or a fresh Postgres database."""
    if request.param == "sqlite":
        return Settings(workdir=tmp_path / "work")
    url = request.getfixturevalue("pg_url")
    return Settings(workdir=tmp_path / "work", database_url=url)


def test_the_database_url_picks_the_checkpointer(backend_settings):
    saver = make_checkpointer(backend_settings)
    try:
        expected = "PostgresSaver" if backend_settings.db_url.startswith("postgresql") else "SqliteSaver"
        assert type(saver).__name__ == expected
        # Both backends revive only the allow-listed types.
        assert saver.serde is not None and ALLOWED_TYPES
    finally:
        saver.conn.close()


def test_a_paused_approval_resumes_after_a_restart(backend_settings):
    first = Pipeline(backend_settings)
    result = first.process_line(CROWN_JEWEL)[0]
    assert result.status == "pending_approval"
    first.close()

    # A new process (on Postgres: possibly another worker) finds the run and resumes it.
    second = Pipeline(backend_settings)
    try:
        [item] = second.pending_approvals()
        state = second.resume(item.thread_id, approved=False, by="lead.ana", comment="owner says it is a test")
        assert not state.get("__interrupt__")
        second.store.session.expire_all()
        row = second.store.session.exec(select(ApprovalRow).where(ApprovalRow.thread_id == item.thread_id)).one()
        assert row.status == "rejected"
        assert second.store.session.get(CaseRow, result.case_id).status != "pending_approval"
    finally:
        second.close()


def test_a_resumed_run_is_not_resumable_twice(backend_settings):
    pipeline = Pipeline(backend_settings)
    try:
        pipeline.process_line(CROWN_JEWEL)
        [item] = pipeline.pending_approvals()
        pipeline.resume(item.thread_id, approved=False, by="lead.ana")
        assert pipeline.pending_approvals() == []
    finally:
        pipeline.close()
