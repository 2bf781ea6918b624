"""/metrics in Prometheus text format, read from the store."""

from __future__ import annotations

import re


def _value(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    assert match, f"{name}{labels} not in:\n{text}"
    return float(match.group(1))


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
