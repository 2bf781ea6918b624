"""Case work over HTTP (a real uvicorn server with a real tokens file): close, reopen, comment, assign, history."""

from __future__ import annotations

import json

from sqlmodel import Session, select

from soc_agent.audit import records
from soc_agent.learning import learn_from_store
from soc_agent.store import AlertRow, CaseRow


def _case_id(kit) -> str:
    return kit.seed(kit.exec_travel)[0].case_id


def _row(server, case_id: str) -> CaseRow:
    with Session(server.state.pipeline.store.engine) as session:
        return session.get(CaseRow, case_id)


def test_missing_or_unknown_token_is_401(kit, start_server):
    case_id = _case_id(kit)
    server = start_server()
    with server.client() as c:
        assert c.post(f"/api/cases/{case_id}/close", json={"disposition": "false_positive",
                                                          "reason": "x"}).status_code == 401
        assert c.get(f"/api/cases/{case_id}/history", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert _row(server, case_id).status == "pending_approval"


def test_an_analyst_closes_comments_assigns_and_reopens_and_the_history_says_who_and_when(kit, start_server):
    case_id = _case_id(kit)
    server = start_server()
    with server.client("analyst") as c:
        assert c.post(f"/api/cases/{case_id}/comments", json={"text": "<img src=x onerror=alert(1)>"}).status_code \
            == 200
        assigned = c.post(f"/api/cases/{case_id}/assign", json={"assignee": "cy.analyst"})
        closed = c.post(f"/api/cases/{case_id}/close", json={"disposition": "benign_positive",
                                                            "reason": "travel was booked"})
    assert assigned.status_code == 200 and assigned.json()["assignee"] == "cy.analyst"
    assert closed.status_code == 200, closed.text
    assert (closed.json()["status"], closed.json()["label"], closed.json()["by"]) == ("closed", "benign_positive",
                                                                                     "bo.analyst")
    with Session(server.state.pipeline.store.engine) as session:
        assert {a.label for a in session.exec(select(AlertRow).where(AlertRow.case_id == case_id))} == \
            {"benign_positive"}
    with server.client("lead") as c:
        reopened = c.post(f"/api/cases/{case_id}/reopen", json={"reason": "new evidence"})
    # The close withdrew the waiting action, so the reopened case is open, not waiting.
    assert reopened.status_code == 200 and reopened.json()["status"] == "open"
    with server.client("viewer") as c:
        history = c.get(f"/api/cases/{case_id}/history")
    assert history.status_code == 200
    assert [(h["kind"], h["who"], h["role"]) for h in history.json()] == [
        ("comment", "bo.analyst", "analyst"), ("assign", "bo.analyst", "analyst"),
        ("comment", "bo.analyst", "analyst"),  # the rejection that withdrew the waiting action
        ("close", "bo.analyst", "analyst"), ("reopen", "ana.lead", "lead")]
    assert history.json()[0]["text"] == "<img src=x onerror=alert(1)>"  # JSON carries it as given
    assert all(h["at"] for h in history.json())
    kinds = [r.kind for r in records(server.state.pipeline.store.engine, case_id)]
    assert [k for k in kinds if k.startswith("case.")] == ["case.commented", "case.assigned", "case.closed",
                                                         "case.reopened"]


def test_a_close_over_the_api_is_learned(kit, start_server):
    case_id = _case_id(kit)
    server = start_server()
    with server.client("analyst") as c:
        assert c.post(f"/api/cases/{case_id}/close", json={"disposition": "true_positive",
                                                          "reason": "user confirmed compromise"}).status_code == 200
    with server.state.lock:
        report, _ = learn_from_store(server.state.pipeline.store)
    assert report.learned == 1 and report.by_label == {"true_positive": 1}


def test_viewer_is_refused_and_audited_and_nothing_changes(kit, start_server):
    case_id = _case_id(kit)
    server = start_server()
    with server.client("viewer") as c:
        for path, body in (("close", {"disposition": "false_positive", "reason": "x"}), ("reopen", {}),
                           ("comments", {"text": "hi"}), ("assign", {"assignee": "vic"})):
            response = c.post(f"/api/cases/{case_id}/{path}", json=body)
            assert response.status_code == 403, (path, response.text)
    row = _row(server, case_id)
    assert (row.status, row.label, row.assignee) == ("pending_approval", None, None)
    refused = [json.loads(r.payload) for r in records(server.state.pipeline.store.engine, case_id)
               if r.kind == "case.refused"]
    assert [(r["by"], r["attempt"]) for r in refused] == [("vic.viewer", "close"), ("vic.viewer", "reopen"),
                                                         ("vic.viewer", "comment"), ("vic.viewer", "assign")]


def test_bad_requests_get_their_status(kit, start_server):
    case_id = _case_id(kit)
    server = start_server()
    with server.client("analyst") as c:
        assert c.post("/api/cases/case-nope/close", json={"disposition": "false_positive",
                                                          "reason": "x"}).status_code == 404
        assert c.get("/api/cases/case-nope/history").status_code == 404
        bad = c.post(f"/api/cases/{case_id}/close", json={"disposition": "benign", "reason": "x"})
        assert bad.status_code == 422 and "false_positive" in bad.json()["detail"]
        assert c.post(f"/api/cases/{case_id}/close", json={"disposition": "false_positive"}).status_code == 422
        assert c.post(f"/api/cases/{case_id}/comments", json={"text": ["not", "text"]}).status_code == 422
        assert c.post(f"/api/cases/{case_id}/comments", json={"text": "x" * 4097}).status_code == 422
        assert c.post(f"/api/cases/{case_id}/comments", content=b"[1]").status_code == 400
        assert c.post(f"/api/cases/{case_id}/comments", content=b"{nope").status_code == 400
        oversize = c.post(f"/api/cases/{case_id}/comments", content=b" " * (64 * 1024 + 1))
        assert oversize.status_code == 413
        assert c.post(f"/api/cases/{case_id}/reopen", json={}).status_code == 409
        assert c.post(f"/api/cases/{case_id}/close", json={"disposition": "false_positive",
                                                          "reason": "fine"}).status_code == 200
        again = c.post(f"/api/cases/{case_id}/close", json={"disposition": "true_positive", "reason": "no"})
        assert again.status_code == 409 and "reopen" in again.json()["detail"]
    assert _row(server, case_id).label == "false_positive"
