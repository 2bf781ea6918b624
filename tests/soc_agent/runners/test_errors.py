"""``Rejected`` -> HTTP: one handler sets the status, the body and ``Retry-After``."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from soc_agent.runners import hec
from soc_agent.runners.errors import Rejected, install


def _app(exc: Rejected, installed: bool = True) -> TestClient:
    app = FastAPI()
    if installed:
        install(app)

    @app.post("/refuse")
    def refuse() -> dict:
        raise exc

    return TestClient(app)


def test_a_refusal_answers_its_status_and_reason():
    with _app(Rejected(409, "event or signature already accepted")) as client:
        answer = client.post("/refuse")
    assert answer.status_code == 409
    assert answer.json() == {"detail": "event or signature already accepted"}
    assert "retry-after" not in answer.headers


def test_a_busy_refusal_carries_retry_after():
    for status in (429, 503):
        with _app(Rejected(status, "backpressure: partition 3 backlog over 100", retry_after=7)) as client:
            answer = client.post("/refuse")
        assert answer.status_code == status and answer.headers["retry-after"] == "7"
        assert answer.json() == {"detail": "backpressure: partition 3 backlog over 100"}


def test_a_protocol_body_replaces_the_detail():
    refused = hec.refusal(503, 9, "Server is busy", 5, detail="broker unavailable")
    with _app(refused) as client:
        answer = client.post("/refuse")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.json() == {"text": "Server is busy", "code": 9, "detail": "broker unavailable"}
    assert str(refused) == "Server is busy" and refused.status == refused.status_code == 503


def test_without_the_handler_a_refusal_is_still_its_status_and_detail():
    # The edge endpoints are included in apps of their own (tests, serve_standalone).
    with _app(Rejected(429, "slow down", retry_after=3), installed=False) as client:
        answer = client.post("/refuse")
    assert answer.status_code == 429 and answer.headers["retry-after"] == "3"
    assert answer.json() == {"detail": "slow down"}
