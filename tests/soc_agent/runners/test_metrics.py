"""/metrics in Prometheus text format, read from the store."""

from __future__ import annotations

import re


def _value(text: str, name: str, labels: str = "") -> float:
    """The sample ``name{labels}``; label order does not matter (the exposition sorts label names)."""
    wanted = sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
    for match in re.finditer(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", text, re.M):
        if sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1) or "")) == wanted:
            return float(match.group(2))
    raise AssertionError(f"{name}{labels} not in:\n{text}")


def test_metrics_expose_alerts_cases_decisions_approvals_actions_llm_and_dead_letters(kit, start_server):
    kit.seed(kit.crown_jewel, kit.exec_travel, b"{not json")
    server = start_server()
    with server.client() as c:
        response = c.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE soc_agent_alerts_ingested_total counter" in text
    assert _value(text, "soc_agent_alerts_ingested_total", '{kind="alert"}') == 2
    assert _value(text, "soc_agent_cases", '{status="pending_approval"}') == 2
    assert _value(text, "soc_agent_decisions_total", '{outcome="needs_approval"}') == 2
    assert _value(text, "soc_agent_approvals_pending") == 2
    assert _value(text, "soc_agent_approvals_pending_oldest_age_seconds") >= 0
    assert _value(text, "soc_agent_llm_calls_total") == 0 and _value(text, "soc_agent_llm_tokens_total") == 0
    assert _value(text, "soc_agent_dead_letters_total") == 1

    with server.client("lead") as c:
        assert c.post("/api/approvals/1/approve", json={}).status_code == 200  # the first of two (crown jewel)
    with server.client("lead2") as c:
        assert c.post("/api/approvals/1/approve", json={}).status_code == 200
        text = c.get("/metrics").text
    assert _value(text, "soc_agent_approvals_pending") == 1
    assert _value(text, "soc_agent_actions_total", '{tier="contain_hard",status="done"}') == 1
    assert _value(text, "soc_agent_approvals_total", '{status="approved"}') == 1


def test_a_scraper_that_asks_for_openmetrics_gets_it_and_hostile_label_values_are_escaped(kit, start_server):
    kit.seed(kit.crown_jewel)
    server = start_server()
    with server.client() as c:
        response = c.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
    assert "# TYPE soc_agent_alerts_ingested counter" in response.text


def test_label_values_from_stored_data_cannot_break_the_exposition(settings):
    from sqlmodel import Session

    from soc_agent.runners.metrics import render
    from soc_agent.runners.tables import WebhookEventRow
    from soc_agent.store import Store
    from soc_agent.types import utcnow

    store = Store(settings.db_url)
    try:
        with Session(store.engine) as session:
            session.add(WebhookEventRow(provider='x"}\nsoc_agent_cases{status="forged"} 9', received_at=utcnow(),
                                        http_status=200, outcome="accepted"))
            session.commit()
        text = render(store.engine)
    finally:
        store.close()
    assert 'soc_agent_cases{status="forged"} 9' not in text.splitlines()
    assert 'provider="x\\"}\\nsoc_agent_cases' in text
