"""The approval queue's JSON API over a real uvicorn server on loopback."""

from __future__ import annotations

import threading

from sqlmodel import Session, select

from soc_agent.audit import records, verify
from soc_agent.runners.approvals import QueuePolicy
from soc_agent.store import ActionRow, ApprovalRow, CaseRow


def _pending(server) -> list[dict]:
    with server.client("viewer") as c:
        response = c.get("/api/approvals")
    assert response.status_code == 200
    return response.json()


def _by_action(items: list[dict], action: str) -> dict:
    return next(i for i in items if i["action"] == action)


def test_missing_or_wrong_token_is_401(kit, start_server):
    kit.seed(kit.crown_jewel)
    server = start_server()
    with server.client() as c:
        assert c.get("/api/approvals").status_code == 401
        assert c.get("/api/approvals", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.post("/api/approvals/1/approve", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert _pending(server)[0]["status"] == "pending"


def test_item_shows_case_action_blast_radius_reasons_and_evidence(kit, start_server):
    kit.seed(kit.crown_jewel)
    server = start_server()
    item_id = _pending(server)[0]["id"]
    with server.client("viewer") as c:
        item = c.get(f"/api/approvals/{item_id}").json()
    assert item["action"] == "isolate_host" and item["tier"] == "contain_hard"
    assert item["target"] == "host:dc02.corp.example" and item["rollback"] == "release_host"
    assert item["blast_radius"]["crown_jewel"] is True and item["required_role"] == "lead"
    assert any("crown-jewel" in r for r in item["approval_reasons"])
    assert item["case"]["summary"] and item["case"]["evidence"]
    assert {m["name"] for m in item["menu"]} >= {"isolate_host", "notify_analyst"}


def test_viewer_cannot_approve_and_nothing_changes(kit, start_server):
    kit.seed(kit.exec_travel)
    server = start_server()
    item_id = _pending(server)[0]["id"]
    with server.client("viewer") as c:
        response = c.post(f"/api/approvals/{item_id}/approve", json={"comment": "lgtm"})
    assert response.status_code == 403
    assert _pending(server)[0]["id"] == item_id
    kinds = [r.kind for r in records(server.state.pipeline.store.engine)]
    assert "approval.refused" in kinds and "approval.decided" not in kinds


def test_crown_jewel_needs_a_lead(kit, start_server):
    kit.seed(kit.crown_jewel)
    server = start_server()
    item_id = _pending(server)[0]["id"]
    with server.client("analyst") as c:
        refused = c.post(f"/api/approvals/{item_id}/approve", json={})
    assert refused.status_code == 403 and "lead" in refused.json()["detail"]
    with server.client("lead") as c:
        first = c.post(f"/api/approvals/{item_id}/approve", json={"comment": "owner agreed"})
    assert first.status_code == 200 and first.json()["status"] == "pending", first.text
    with server.client("lead2") as c:
        approved = c.post(f"/api/approvals/{item_id}/approve", json={"comment": "second pair of eyes"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["action_status"] == "executed"
    with Session(server.state.pipeline.store.engine) as session:
        row = session.get(ApprovalRow, item_id)
        assert (row.status, row.decided_by) == ("approved", "ana.lead and di.lead")
        action = session.exec(select(ActionRow).where(ActionRow.status == "done")).one()
        assert action.approved_by == "ana.lead and di.lead"
        assert session.get(CaseRow, row.case_id).status == "contained"
    decided = [r for r in records(server.state.pipeline.store.engine) if r.kind == "approval.decided"]
    assert '"by":"di.lead"' in decided[0].payload and '"approvers":["ana.lead","di.lead"]' in decided[0].payload
    firsts = [r for r in records(server.state.pipeline.store.engine) if r.kind == "approval.first_approval"]
    assert len(firsts) == 1 and '"by":"ana.lead"' in firsts[0].payload


def test_nobody_approves_a_request_they_raised(kit, start_server):
    server = start_server()
    with server.client("analyst") as c:
        submitted = c.post("/api/alerts", content=kit.exec_travel)
        assert submitted.status_code == 200, submitted.text
        assert submitted.json()[0]["status"] == "pending_approval"
        item = c.get("/api/approvals").json()[0]
        assert item["requested_by"] == "bo.analyst"
        assert c.post(f"/api/approvals/{item['id']}/approve", json={}).status_code == 403
    with server.client("analyst2") as c:
        assert c.post(f"/api/approvals/{item['id']}/approve", json={}).status_code == 200


def test_two_analysts_approving_at_once_one_wins_one_gets_409(kit, start_server):
    kit.seed(kit.exec_travel)
    server = start_server()
    item_id = _pending(server)[0]["id"]
    barrier = threading.Barrier(2)
    codes: dict[str, int] = {}

    def approve(role: str) -> None:
        with server.client(role) as c:
            barrier.wait()
            codes[role] = c.post(f"/api/approvals/{item_id}/approve", json={"comment": role}).status_code

    threads = [threading.Thread(target=approve, args=(r,)) for r in ("analyst", "analyst2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes.values()) == [200, 409]
    with Session(server.state.pipeline.store.engine) as session:
        assert len(session.exec(select(ActionRow).where(ActionRow.name == "revoke_sessions")).all()) == 1
    assert verify(server.state.pipeline.store.engine).ok


def test_reject_records_comment_and_runs_nothing(kit, start_server):
    kit.seed(kit.exec_travel)
    server = start_server()
    item_id = _pending(server)[0]["id"]
    with server.client("analyst") as c:
        response = c.post(f"/api/approvals/{item_id}/reject", json={"comment": "CEO is on a plane"})
        assert response.status_code == 200 and response.json()["action_status"] == "rejected"
        again = c.post(f"/api/approvals/{item_id}/approve", json={})
        assert again.status_code == 409
        case = c.get(f"/api/cases/{response.json()['case_id']}").json()
    assert any("CEO is on a plane" in c["body"] for c in case["comments"])


def test_edit_to_an_action_off_the_menu_or_with_bad_params_is_refused(kit, start_server):
    kit.seed(kit.exec_travel)
    server = start_server()
    item_id = _pending(server)[0]["id"]
    with server.client("analyst") as c:
        off_menu = c.post(f"/api/approvals/{item_id}/edit", json={"action": "reimage_host"})
        bad_param = c.post(f"/api/approvals/{item_id}/edit", json={"params": {"ttl_seconds": 60}})
        not_object = c.post(f"/api/approvals/{item_id}/edit", content=b"[1]")
    assert off_menu.status_code == 422 and "menu" in off_menu.json()["detail"]
    assert bad_param.status_code == 422
    assert not_object.status_code == 400
    assert _pending(server)[0]["id"] == item_id


def test_expired_item_is_rejected_and_approving_it_is_409(kit, start_server):
    kit.seed(kit.exec_travel)
    server = start_server(queue_policy=QueuePolicy(ttl_s=0))
    with server.client("analyst") as c:
        assert c.get("/api/approvals").json() == []
        response = c.post("/api/approvals/1/approve", json={})
    assert response.status_code == 409 and "expired" in response.json()["detail"]
    with Session(server.state.pipeline.store.engine) as session:
        assert session.get(ApprovalRow, 1).status == "expired"
        assert session.exec(select(ActionRow)).one().status == "rejected"


def test_expiry_can_escalate_to_a_lead(kit, start_server):
    kit.seed(kit.exec_travel)
    server = start_server(queue_policy=QueuePolicy(ttl_s=0, on_expiry="escalate", escalated_ttl_s=3600))
    item = _pending(server)[0]
    assert item["escalated"] and item["required_role"] == "lead"
    with server.client("analyst") as c:
        assert c.post(f"/api/approvals/{item['id']}/approve", json={}).status_code == 403
    with server.client("lead") as c:
        assert c.post(f"/api/approvals/{item['id']}/approve", json={}).status_code == 200


def test_unknown_item_is_404(kit, start_server):
    server = start_server()
    with server.client("lead") as c:
        assert c.get("/api/approvals/99").status_code == 404
        assert c.post("/api/approvals/99/approve", json={}).status_code == 404
