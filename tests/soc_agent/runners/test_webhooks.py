"""The ticketing webhook: signatures, replay window, size, idempotency, and what each event does."""

from __future__ import annotations

import json
import time

from sqlmodel import Session, select

from soc_agent.runners import webhooks
from soc_agent.runners.tables import CaseCommentRow, TicketPostRow, WebhookEventRow
from soc_agent.runners.webhooks import MARKER, SIGNATURE_HEADER, TIMESTAMP_HEADER, LocalTicketSink, sign
from soc_agent.store import AlertRow, CaseRow


def _jira_created(kit, key: str = "SOC-7", author: str = "reporter.rae") -> dict:
    alert = json.loads(kit.exec_travel)
    return {"timestamp": 1, "webhookEvent": "jira:issue_created", "user": {"name": author},
            "issue": {"id": "9007", "key": key,
                      "fields": {"summary": "suspicious sign-in", "description": f"From SIEM:\n{json.dumps(alert)}"}}}


def _jira_resolved(key: str = "SOC-7", label: str = "False Positive") -> dict:
    return {"timestamp": 2, "webhookEvent": "jira:issue_updated", "user": {"name": "bo.analyst"},
            "issue": {"id": "9007", "key": key, "fields": {}},
            "changelog": {"id": "555", "items": [{"field": "resolution", "toString": label}]}}


def _jira_comment(body: str, key: str = "SOC-7", comment_id: str = "c1") -> dict:
    return {"timestamp": 3, "webhookEvent": "comment_created", "issue": {"id": "9007", "key": key},
            "comment": {"id": comment_id, "body": body, "author": {"name": "bo.analyst"}}}


def _post(server, kit, provider: str, payload, *, secret=None, ts=None, raw: bytes | None = None, headers=None):
    body = raw if raw is not None else json.dumps(payload).encode()
    ts = str(int(time.time())) if ts is None else ts
    sent = {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret or kit.secret, ts, body),
            "Content-Type": "application/json"}
    if headers is not None:
        sent = headers
    with server.client() as c:
        return c.post(f"/webhooks/{provider}", content=body, headers=sent)


def _events(server) -> list[WebhookEventRow]:
    with Session(server.state.pipeline.store.engine) as session:
        return list(session.exec(select(WebhookEventRow).order_by(WebhookEventRow.id)))


def test_bad_signature_missing_headers_and_stale_timestamp_are_401_counted_not_stored(kit, start_server):
    server = start_server()
    payload = _jira_created(kit)
    assert _post(server, kit, "jira", payload, secret="wrong").status_code == 401
    assert _post(server, kit, "jira", payload, headers={}).status_code == 401
    assert _post(server, kit, "jira", payload, ts=str(int(time.time()) - 3600)).status_code == 401
    assert _post(server, kit, "jira", payload, ts="yesterday").status_code == 401
    odd = {TIMESTAMP_HEADER: "\u00b2".encode("latin-1"), SIGNATURE_HEADER: "sha256=\u00e9".encode("latin-1")}
    assert _post(server, kit, "jira", payload, headers=odd).status_code == 401
    assert _events(server) == []  # a stranger's requests never grow the store
    assert server.state.webhooks.rejected_counts() == {("jira", 401): 5}
    with Session(server.state.pipeline.store.engine) as session:
        assert session.exec(select(CaseRow)).all() == []


def test_replayed_request_is_409(kit, start_server):
    server = start_server()
    body = json.dumps(_jira_comment("hello")).encode()
    ts = str(int(time.time()))
    headers = {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(kit.secret, ts, body)}
    first = _post(server, kit, "jira", None, raw=json.dumps(_jira_created(kit)).encode())
    assert first.status_code == 200
    with server.client() as c:
        assert c.post("/webhooks/jira", content=body, headers=headers).status_code == 200
        assert c.post("/webhooks/jira", content=body, headers=headers).status_code == 409


def test_oversize_non_json_and_unknown_provider(kit, start_server):
    server = start_server()
    assert _post(server, kit, "jira", None, raw=b"x" * (10 * 1024 * 1024)).status_code == 413
    assert _post(server, kit, "jira", None, raw=b"not json{").status_code == 400
    assert _post(server, kit, "jira", None, raw=b"[1, 2]").status_code == 400
    assert _post(server, kit, "pagerduty", {"a": 1}).status_code == 404
    # Oversize and unknown provider are refused before the signature is checked: counted, not stored.
    assert [e.http_status for e in _events(server)] == [400, 400]
    assert server.state.webhooks.rejected_counts() == {("jira", 413): 1, ("jira", 400): 2, ("unknown", 404): 1}


def test_new_ticket_starts_triage_and_the_decision_goes_back_to_the_ticket(kit, start_server):
    sink = LocalTicketSink()
    server = start_server(sink=sink)
    response = _post(server, kit, "jira", _jira_created(kit))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kind"] == "created" and body["triage"] == "pending_approval" and body["case_id"]
    assert sink.posted and sink.posted[0]["ticket_id"] == "SOC-7" and sink.posted[0]["body"].startswith(MARKER)
    # The ticket's reporter raised it: they may not approve it.
    with server.client("viewer") as c:
        assert c.get("/api/approvals").json()[0]["requested_by"] == "reporter.rae"
    with server.client("analyst") as c:
        item = c.get("/api/approvals").json()[0]
        assert c.post(f"/api/approvals/{item['id']}/approve", json={}).status_code == 200
    assert sink.posted[-1]["kind"] == "decision" and "approved by bo.analyst" in sink.posted[-1]["body"]


def test_redelivered_event_is_idempotent(kit, start_server):
    server = start_server()
    first = _post(server, kit, "jira", _jira_created(kit))
    time.sleep(1.1)  # a new timestamp: a fresh signature over the same event
    second = _post(server, kit, "jira", _jira_created(kit))
    assert first.status_code == second.status_code == 200
    assert second.json()["status"] == "duplicate"
    with Session(server.state.pipeline.store.engine) as session:
        assert len(session.exec(select(CaseRow)).all()) == 1


def test_disposition_labels_the_case_and_its_alerts(kit, start_server):
    server = start_server()
    case_id = _post(server, kit, "jira", _jira_created(kit)).json()["case_id"]
    response = _post(server, kit, "jira", _jira_resolved())
    assert response.status_code == 200 and response.json()["kind"] == "disposition"
    with Session(server.state.pipeline.store.engine) as session:
        assert session.get(CaseRow, case_id).label == "false_positive"
        assert {a.label for a in session.exec(select(AlertRow).where(AlertRow.case_id == case_id))} == \
            {"false_positive"}


def test_comment_is_appended_and_the_agents_own_comment_is_ignored(kit, start_server):
    server = start_server()
    case_id = _post(server, kit, "jira", _jira_created(kit)).json()["case_id"]
    assert _post(server, kit, "jira", _jira_comment("<b>owner confirms travel</b>")).status_code == 200
    echoed = _post(server, kit, "jira", _jira_comment(f"{MARKER} triaged: ...", comment_id="c2"))
    assert echoed.status_code == 200 and echoed.json()["kind"] == "ignored"
    with Session(server.state.pipeline.store.engine) as session:
        comments = session.exec(select(CaseCommentRow).where(CaseCommentRow.case_id == case_id)).all()
    assert [c.body for c in comments] == ["<b>owner confirms travel</b>"]


def test_unknown_ticket_is_404(kit, start_server):
    server = start_server()
    assert _post(server, kit, "jira", _jira_comment("hi", key="NOPE-1")).status_code == 404
    assert _events(server)[0].outcome == "rejected"


def test_servicenow_and_thehive_shapes(kit, start_server):
    server = start_server()
    alert = json.loads(kit.crown_jewel)
    created = {"result": {"sys_id": "abc123", "number": "INC0010099", "sys_mod_count": "0",
                          "sys_updated_on": "2024-01-01 00:00:00", "sys_updated_by": "admin",
                          "description": json.dumps(alert), "close_code": "", "comments": ""}}
    response = _post(server, kit, "servicenow", created)
    assert response.status_code == 200 and response.json()["kind"] == "created"
    resolved = {"result": {**created["result"], "sys_mod_count": "3", "close_code": "True Positive"}}
    assert _post(server, kit, "servicenow", resolved).json()["kind"] == "disposition"
    hive = {"operation": "Creation", "objectType": "case", "objectId": "~42", "rootId": "~42", "requestId": "r1",
            "object": {"id": "~42", "title": "x", "createdBy": "me",
                       "description": json.dumps(json.loads(kit.exec_travel))}}
    assert _post(server, kit, "thehive", hive).json()["kind"] == "created"
    hive_resolved = {"operation": "Update", "objectType": "case", "objectId": "~42", "rootId": "~42",
                     "requestId": "r2", "details": {"resolutionStatus": "TruePositive"}, "object": {"id": "~42"}}
    assert _post(server, kit, "thehive", hive_resolved).json()["kind"] == "disposition"


def test_posting_back_retries_transient_failures(kit, start_server, monkeypatch):
    from connectors.errors import Unavailable
    from tenacity import wait_none

    monkeypatch.setattr(webhooks, "RETRY_WAIT", wait_none())

    class Flaky(LocalTicketSink):
        calls = 0

        def post(self, provider, ticket_id, kind, body):
            Flaky.calls += 1
            if Flaky.calls < 3:
                raise Unavailable("jira", "503 from POST /rest/api/2/issue/comment")
            super().post(provider, ticket_id, kind, body)

    sink = Flaky()
    server = start_server(sink=sink)
    assert _post(server, kit, "jira", _jira_created(kit)).status_code == 200
    with Session(server.state.pipeline.store.engine) as session:
        post = session.exec(select(TicketPostRow)).one()
    assert (post.status, post.attempts) == ("sent", 3) and len(sink.posted) == 1


def test_provider_sample_payloads_are_understood():
    """The shared vendor samples map to the right event kinds (read at test time, never copied)."""
    from pathlib import Path

    folder = Path("/work/shared/payloads/ticketing")
    if not folder.exists():
        import pytest

        pytest.skip("shared samples not present")
    load = lambda name: json.loads((folder / name).read_text())  # noqa: E731
    assert webhooks._jira(load("jira_cloud_webhook_issue_created.json"), {}).kind == "created"
    assert webhooks._jira(load("jira_cloud_webhook_comment_created.json"), {}).kind == "comment"
    assert webhooks._jira(load("jira_server_webhook_issue_updated_commented.json"), {}).kind == "comment"
    assert webhooks._jira(load("jira_cloud_webhook_issue_updated_resolved.json"), {}).kind == "ignored"  # "Done"
    assert webhooks._servicenow(load("servicenow_table_api_incident_create_response.json"), {}).kind == "created"
    assert webhooks._thehive(load("thehive_webhook_v0_case_creation.json"), {}).kind == "created"
    assert webhooks._thehive(load("thehive_webhook_v0_case_update.json"), {}).kind == "ignored"


def test_with_a_configured_jira_the_triage_note_reaches_the_real_ticket_api(kit, start_server, tmp_path, monkeypatch):
    """No sink given: the server posts through the configured Jira responder, over HTTP, to a local Jira API."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[tuple[str, str, dict]] = []

    class JiraApi(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 (http.server's naming)
            self._answer(200, {"issues": [], "isLast": True})

        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            received.append((self.path, self.headers.get("Authorization", ""), body))
            self._answer(201, {"id": "10001", "key": "SOC-99"})

        def log_message(self, *args):  # keep test output quiet
            pass

    api = ThreadingHTTPServer(("127.0.0.1", 0), JiraApi)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    try:
        connectors = tmp_path / "connectors.yml"
        connectors.write_text(f"""
connectors:
  tickets:
    type: jira
    base_url: http://127.0.0.1:{api.server_address[1]}
    auth: {{type: basic, username: soc@acme.example, secret: JIRA_TOKEN}}
    grant: [ticket.create, case.annotate]
    options: {{project: SOC}}
""")
        monkeypatch.setenv("SOC_AGENT_CONNECTORS", str(connectors))
        monkeypatch.setenv("JIRA_TOKEN", "jira-api-token")
        server = start_server()
        response = _post(server, kit, "jira", _jira_created(kit))
        assert response.status_code == 200, response.text
        comments = [(path, auth, body) for path, auth, body in received if path == "/rest/api/3/issue/SOC-7/comment"]
        assert comments, received
        path, auth, body = comments[0]
        assert auth.startswith("Basic ") and "jira-api-token" not in auth  # sent encoded, as basic auth
        assert body["body"]["content"][0]["content"][0]["text"].startswith(MARKER)
        with Session(server.state.pipeline.store.engine) as session:
            posts = session.exec(select(TicketPostRow)).all()
        assert posts and all(p.status == "sent" for p in posts)
    finally:
        api.shutdown()
