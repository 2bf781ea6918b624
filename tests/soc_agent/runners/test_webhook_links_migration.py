"""Migration 0009: a ticket queued before the upgrade (its link packed into ``reason``) is still settled."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text

from soc_agent.fleet.postgres import upgrade_schema
from tests.soc_agent.fleet.fleet_kit import pg_url  # noqa: F401  (fixture)

_ROW = ("INSERT INTO webhook_events (provider, event_key, received_at, http_status, outcome, reason, kind, "
        "ticket_id, case_id, size) VALUES ('jira', :key, now(), 202, 'accepted', :reason, 'created', :ticket, "
        ":case_id, 10)")


def test_migration_0009_moves_a_waiting_ticket_link_out_of_the_reason(pg_url):  # noqa: F811
    upgrade_schema(pg_url, "0008")
    engine = create_engine(pg_url)
    with engine.begin() as conn:  # 0001's baseline made today's tables: take the new columns out again
        for column in ("queued_alert", "raised_by"):
            conn.execute(text(f"ALTER TABLE webhook_events DROP COLUMN {column}"))
        for key, reason, case_id in (
                ("jira:1", "queued for a worker on partition 2; raised by rae; x; alert splunk:a; b", None),
                ("jira:2", "queued for a worker on partition 0; alert splunk:b", None),
                ("jira:3", "queued on partition 1; alert id too long to link the ticket", None),
                ("jira:4", "queued for a worker on partition 3; alert splunk:c", "case-linked")):
            conn.execute(text(_ROW), {"key": key, "reason": reason, "ticket": key.upper(), "case_id": case_id})
    upgrade_schema(pg_url)
    assert {"queued_alert", "raised_by"} <= {c["name"] for c in inspect(engine).get_columns("webhook_events")}
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT event_key, queued_alert, raised_by FROM webhook_events "
                                 "ORDER BY event_key")).all()
    # The key is everything after the first "; alert " (free text from the alert); the author before it.
    assert [tuple(r) for r in rows] == [("jira:1", "splunk:a; b", "rae; x"), ("jira:2", "splunk:b", None),
                                        ("jira:3", None, None), ("jira:4", None, None)]
    upgrade_schema(pg_url)  # a second upgrade is a no-op
    engine.dispose()
