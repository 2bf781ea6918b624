"""Splunk HEC push (``/services/collector[/event]``) against the real app under uvicorn on loopback."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

HEC_TOKEN = "hec-0b5e-4c1d-9f7a-test"


def _notable(n: int) -> dict:
    from datetime import datetime, timedelta, timezone

    when = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
    return {"_time": when, "event_id": f"HEC-{n}", "index": "notable", "urgency": "high",
            "search_name": "Endpoint - Recurring Malware Infection - Rule", "dest": f"hec-ws-{n}",
            "src": f"198.51.100.{n}", "user": f"hecuser{n}"}


@pytest.fixture
def hec(start_server, monkeypatch):
    monkeypatch.setenv("SOC_AGENT_HEC_TOKEN", HEC_TOKEN)
    monkeypatch.setenv("SOC_AGENT_HEC_MAX_BYTES", "20000")
    return start_server()


def _rows(running, table):
    with running.state.lock:
        running.state.pipeline.store.commit()
    with running.state.pipeline.store.reader() as session:
        return session.exec(select(table)).all()


def test_good_token_triages_every_concatenated_envelope(hec):
    from soc_agent.store import AlertRow, CaseRow

    body = "".join(json.dumps({"event": _notable(n), "time": 1714557600, "sourcetype": "stash"}) for n in (1, 2))
    with hec.client() as http:
        response = http.post("/services/collector/event", content=body,
                             headers={"Authorization": f"Splunk {HEC_TOKEN}"})
        assert (response.status_code, response.json()) == (200, {"text": "Success", "code": 0})
        also = http.post("/services/collector", content=json.dumps({"event": _notable(3)}),
                         headers={"Authorization": f"Splunk {HEC_TOKEN}"})
        assert also.json()["code"] == 0
    alerts = _rows(hec, AlertRow)
    assert sorted(a.alert_id for a in alerts) == ["HEC-1", "HEC-2", "HEC-3"]
    assert {a.source for a in alerts} == {"splunk"} and len(_rows(hec, CaseRow)) == 3


def test_a_string_event_no_format_knows_is_dead_lettered_not_refused(hec):
    from soc_agent.store import DeadLetterRow

    with hec.client() as http:
        response = http.post("/services/collector/event", content=json.dumps({"event": "{\"hello\": 1}"}),
                             headers={"Authorization": f"Splunk {HEC_TOKEN}"})
    assert response.json()["code"] == 0
    [dead] = _rows(hec, DeadLetterRow)
    assert dead.source == "hec:hec" and dead.reason.startswith("unknown format")


@pytest.mark.parametrize("header, status, code", [
    (None, 401, 2), ("Bearer " + HEC_TOKEN, 401, 3), ("Splunk wrong-token", 403, 4),
    ("Splunk " + HEC_TOKEN[:-1], 403, 4),
])
def test_missing_malformed_or_wrong_token_is_refused_and_nothing_is_triaged(hec, header, status, code):
    from soc_agent.store import AlertRow

    headers = {"Authorization": header} if header else {}
    with hec.client() as http:
        response = http.post("/services/collector/event", content=json.dumps({"event": _notable(1)}), headers=headers)
    assert response.status_code == status and response.json()["code"] == code
    assert _rows(hec, AlertRow) == []


def test_no_configured_token_disables_the_endpoint(start_server, monkeypatch):
    monkeypatch.delenv("SOC_AGENT_HEC_TOKEN", raising=False)
    running = start_server()
    with running.client() as http:
        response = http.post("/services/collector/event", content=b'{"event": {"a": 1}}',
                             headers={"Authorization": "Splunk anything"})
    assert (response.status_code, response.json()) == (403, {"text": "Token disabled", "code": 1})


def test_oversize_body_is_refused_with_413(hec):
    big = json.dumps({"event": {**_notable(1), "padding": "x" * 30000}})
    with hec.client() as http:
        response = http.post("/services/collector/event", content=big,
                             headers={"Authorization": f"Splunk {HEC_TOKEN}"})
        chunked = http.post("/services/collector/event", content=iter([big[:15000].encode(), big[15000:].encode()]),
                            headers={"Authorization": f"Splunk {HEC_TOKEN}"})
    assert response.status_code == 413 and response.json()["code"] == 27
    assert chunked.status_code == 413


@pytest.mark.parametrize("body, code, number", [
    (b"", 5, None),
    (b'{"event": {"a": 1}}{"event": {"b": 2', 6, 1),
    (b'{"event": {"a": 1}} [1, 2]', 6, 1),
    (b'{"time": 1714557600, "sourcetype": "stash"}', 12, 0),
    (b'{"event": ""}', 13, 0),
    (b"\xff\xfe", 6, 0),
])
def test_malformed_batches_are_refused_whole_with_hec_codes(hec, body, code, number):
    from soc_agent.store import AlertRow, DeadLetterRow

    with hec.client() as http:
        response = http.post("/services/collector/event", content=body,
                             headers={"Authorization": f"Splunk {HEC_TOKEN}"})
    assert response.status_code == 400 and response.json()["code"] == code
    assert response.json().get("invalid-event-number") == number
    assert _rows(hec, AlertRow) == [] and _rows(hec, DeadLetterRow) == []
