"""The ticketing webhook: signatures, replay window, size, idempotency, and what each event does."""

from __future__ import annotations

import json
import time

import pytest
from sqlmodel import Session, select

from soc_agent.runners import webhooks
from soc_agent.runners.tables import CaseCommentRow, TicketPostRow, WebhookEventRow
from soc_agent.runners.webhooks import MARKER, SIGNATURE_HEADER, TIMESTAMP_HEADER, LocalTicketSink, sign
from soc_agent.store import AlertRow, CaseRow
from tests.connectors.connector_samples import shared_sample


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


def test_a_thehive_false_positive_closes_the_case_as_its_author_and_a_changed_resolution_re_closes_it(
        kit, start_server):
    from soc_agent.audit import records
    from soc_agent.case_history import case_history
    from soc_agent.learning import learn_from_store

    server = start_server()
    hive = {"operation": "Creation", "objectType": "case", "objectId": "~77", "rootId": "~77", "requestId": "r1",
            "object": {"id": "~77", "title": "x", "createdBy": "me",
                       "description": json.dumps(json.loads(kit.exec_travel))}}
    case_id = _post(server, kit, "thehive", hive).json()["case_id"]
    resolved = {"operation": "Update", "objectType": "case", "objectId": "~77", "rootId": "~77", "requestId": "r2",
                "details": {"resolutionStatus": "FalsePositive"}, "object": {"id": "~77", "updatedBy": "eve.hive"}}
    assert _post(server, kit, "thehive", resolved).json()["kind"] == "disposition"
    with Session(server.state.pipeline.store.engine) as session:
        case = session.get(CaseRow, case_id)
        assert (case.status, case.label) == ("closed", "false_positive")
    [closed] = [json.loads(r.payload) for r in records(server.state.pipeline.store.engine, case_id)
                if r.kind == "case.closed"]
    assert (closed["by"], closed["role"], closed["source"]) == ("eve.hive", "analyst", "thehive")
    assert "ticket ~77 resolved as false_positive" in closed["reason"]
    changed = {**resolved, "requestId": "r3", "details": {"resolutionStatus": "TruePositive"}}
    assert _post(server, kit, "thehive", changed).status_code == 200
    with server.state.lock:
        history = [(h["kind"], h["who"], h["source"])
                   for h in case_history(server.state.pipeline.store.session, case_id)]
        report, _ = learn_from_store(server.state.pipeline.store)
    # The first close withdrew the waiting action (the queue's rejection comment), then closed.
    assert history == [("comment", "eve.hive", "queue"), ("close", "eve.hive", "thehive"),
                       ("reopen", "eve.hive", "thehive"), ("close", "eve.hive", "thehive")]
    assert report.by_label == {"true_positive": 1}


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


# ---- each vendor's own authentication ------------------------------------------------------------
# Deliveries in the vendors' payload shapes (the shared samples, read at test time), authenticated the
# way each vendor sends them: Jira's X-Hub-Signature, ServiceNow's Basic auth plus a shared header,
# TheHive's bearer token.

JIRA_SECRET = "jira-webhook-secret-7Qx"
SN_USER, SN_PASSWORD = "svc.soc-agent", "sn-pässword-42"
SN_HEADER, SN_HEADER_SECRET = "X-SOC-Shared-Key", "sn-shared-9f2"
HIVE_TOKEN = "hive-endpoint-key-3Zk"


def _native_config(**overrides) -> webhooks.WebhookConfig:
    auth = {"jira": webhooks.ProviderAuth(scheme="hub-signature", secret=JIRA_SECRET),
            "servicenow": webhooks.ProviderAuth(scheme="basic", username=SN_USER, password=SN_PASSWORD,
                                                header=SN_HEADER, header_secret=SN_HEADER_SECRET),
            "thehive": webhooks.ProviderAuth(scheme="bearer", token=HIVE_TOKEN)}
    return webhooks.WebhookConfig(auth={**auth, **overrides})


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _native_headers(provider: str, body: bytes, delivery: str = "d-1") -> dict:
    if provider == "jira":
        return {"X-Hub-Signature": webhooks.hub_signature(JIRA_SECRET, body),
                "X-Atlassian-Webhook-Identifier": delivery, "Content-Type": "application/json"}
    if provider == "servicenow":
        return {"Authorization": _basic(SN_USER, SN_PASSWORD), SN_HEADER: SN_HEADER_SECRET,
                "Content-Type": "application/json"}
    return {"Authorization": f"Bearer {HIVE_TOKEN}", "Content-Type": "application/json"}


def _deliver(server, provider: str, body: bytes, headers: dict):
    with server.client() as c:
        return c.post(f"/webhooks/{provider}", content=body, headers=headers)


def _alert_text(kit, which: str = "exec_travel") -> str:
    return json.dumps(json.loads(getattr(kit, which)))


def _jira_sample_created(kit) -> dict:
    payload = shared_sample("ticketing", "jira_cloud_webhook_issue_created.json")
    payload["issue"]["fields"]["description"] = f"Raised by the SIEM:\n{_alert_text(kit)}"
    return payload


def _sn_sample_created(kit) -> dict:
    payload = shared_sample("ticketing", "servicenow_table_api_incident_create_response.json")
    payload["result"]["description"] = _alert_text(kit, "crown_jewel")
    return payload


def _hive_sample_created(kit) -> dict:
    payload = shared_sample("ticketing", "thehive_webhook_v0_case_creation.json")
    payload["object"]["description"] = _alert_text(kit)
    return payload


def _cases(server) -> list:
    with Session(server.state.pipeline.store.engine) as session:
        return list(session.exec(select(CaseRow)))


def _comments(server) -> list[str]:
    with Session(server.state.pipeline.store.engine) as session:
        return [c.body for c in session.exec(select(CaseCommentRow).order_by(CaseCommentRow.id))]


def test_jira_delivery_signed_with_its_webhook_secret_is_accepted(kit, start_server):
    server = start_server(webhook_config=_native_config())
    created = json.dumps(_jira_sample_created(kit)).encode()
    response = _deliver(server, "jira", created, _native_headers("jira", created, "wh-created-1"))
    assert response.status_code == 200, response.text
    assert response.json()["kind"] == "created" and response.json()["case_id"]
    comment = shared_sample("ticketing", "jira_cloud_webhook_comment_created.json")
    comment["issue"]["key"] = "KT-22"  # the created sample's issue
    body = json.dumps(comment).encode()
    response = _deliver(server, "jira", body, _native_headers("jira", body, "wh-comment-1"))
    assert response.status_code == 200 and response.json()["kind"] == "comment"
    assert _comments(server) == [comment["comment"]["body"]]


def test_servicenow_outbound_rest_with_basic_auth_and_shared_header_is_accepted(kit, start_server):
    server = start_server(webhook_config=_native_config())
    created = _sn_sample_created(kit)
    body = json.dumps(created).encode()
    response = _deliver(server, "servicenow", body, _native_headers("servicenow", body))
    assert response.status_code == 200, response.text
    assert response.json()["kind"] == "created" and response.json()["case_id"]
    update = shared_sample("ticketing", "servicenow_table_api_incident_update_response.json")
    update["result"].update(sys_id=created["result"]["sys_id"], number=created["result"]["number"],
                            comments="caller confirms the file came from the vendor portal")
    body = json.dumps(update).encode()
    response = _deliver(server, "servicenow", body, _native_headers("servicenow", body))
    assert response.status_code == 200 and response.json()["kind"] == "comment"
    assert _comments(server) == ["caller confirms the file came from the vendor portal"]


def test_servicenow_oauth_bearer_token_is_accepted(kit, start_server):
    token = "sn-oauth-access-token-1"
    server = start_server(webhook_config=_native_config(
        servicenow=webhooks.ProviderAuth(scheme="bearer", token=token)))
    body = json.dumps(_sn_sample_created(kit)).encode()
    response = _deliver(server, "servicenow", body, {"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.json()["kind"] == "created"
    assert _deliver(server, "servicenow", body, {"Authorization": "Bearer sn-oauth-access-token-2"}).status_code \
        == 401


def test_thehive_webhook_endpoint_with_bearer_or_basic_auth_is_accepted(kit, start_server):
    server = start_server(webhook_config=_native_config())
    body = json.dumps(_hive_sample_created(kit)).encode()
    response = _deliver(server, "thehive", body, _native_headers("thehive", body))
    assert response.status_code == 200, response.text
    assert response.json()["kind"] == "created" and response.json()["case_id"]
    # TheHive 5's own audit shape (a status change): accepted, nothing to do.
    audit = json.dumps(shared_sample("ticketing", "thehive5_audit_event_case_status_update.json")).encode()
    response = _deliver(server, "thehive", audit, _native_headers("thehive", audit))
    assert response.status_code == 200 and response.json()["kind"] == "ignored"

    # An endpoint with Basic authentication instead (a second server on the same store).
    basic = start_server(webhook_config=_native_config(
        thehive=webhooks.ProviderAuth(scheme="basic", username="thehive", password="hive-basic-pw")))
    update = json.dumps(shared_sample("ticketing", "thehive_webhook_v0_case_update.json")).encode()
    response = _deliver(basic, "thehive", update, {"Authorization": _basic("thehive", "hive-basic-pw")})
    assert response.status_code == 200 and response.json()["kind"] == "ignored"
    assert _deliver(basic, "thehive", update, {"Authorization": f"Bearer {HIVE_TOKEN}"}).status_code == 401


def _bad_requests(provider: str, body: bytes) -> dict[str, dict]:
    """Wrong secret, missing auth, bad format, non-ASCII header: each must be 401."""
    good = _native_headers(provider, body)
    ascii_junk = "\u00e9\u00b2\u00ff".encode("latin-1")
    if provider == "jira":
        correct = webhooks.hub_signature(JIRA_SECRET, body)
        return {
            "wrong secret": {**good, "X-Hub-Signature": webhooks.hub_signature("not-the-secret", body)},
            "missing": {k: v for k, v in good.items() if k != "X-Hub-Signature"},
            "bare hex": {**good, "X-Hub-Signature": correct.removeprefix("sha256=")},
            "sha1 method": {**good, "X-Hub-Signature": "sha1=" + correct.removeprefix("sha256=")},
            "non-ascii": {**good, "X-Hub-Signature": b"sha256=" + ascii_junk},
            "soc-agent scheme instead": {TIMESTAMP_HEADER: str(int(time.time())),
                                         SIGNATURE_HEADER: sign(JIRA_SECRET, str(int(time.time())), body)},
        }
    if provider == "servicenow":
        return {
            "wrong password": {**good, "Authorization": _basic(SN_USER, "wrong")},
            "wrong user": {**good, "Authorization": _basic("admin", SN_PASSWORD)},
            "wrong shared header": {**good, SN_HEADER: "sn-shared-000"},
            "missing shared header": {k: v for k, v in good.items() if k != SN_HEADER},
            "missing": {k: v for k, v in good.items() if k != "Authorization"},
            "not base64": {**good, "Authorization": "Basic ***not-base64***"},
            "no colon": {**good, "Authorization": "Basic " + __import__("base64").b64encode(b"svc").decode()},
            "bearer instead": {**good, "Authorization": f"Bearer {SN_PASSWORD}".encode()},
            "non-ascii": {**good, "Authorization": b"Basic " + ascii_junk},
        }
    return {
        "wrong token": {**good, "Authorization": "Bearer hive-endpoint-key-000"},
        "missing": {k: v for k, v in good.items() if k != "Authorization"},
        "no scheme": {**good, "Authorization": HIVE_TOKEN},
        "basic instead": {**good, "Authorization": _basic("thehive", HIVE_TOKEN)},
        "non-ascii": {**good, "Authorization": b"Bearer " + ascii_junk},
    }


@pytest.mark.parametrize("provider", ["jira", "servicenow", "thehive"])
def test_wrong_missing_malformed_or_non_ascii_auth_is_401_counted_and_stores_nothing(kit, start_server, provider):
    server = start_server(webhook_config=_native_config())
    payload = {"jira": _jira_sample_created, "servicenow": _sn_sample_created, "thehive": _hive_sample_created}
    body = json.dumps(payload[provider](kit)).encode()
    bad = _bad_requests(provider, body)
    for name, headers in bad.items():
        response = _deliver(server, provider, body, headers)
        assert response.status_code == 401, name
        assert response.json() == {"detail": "authentication failed"}, name  # nothing about which check failed
    assert _events(server) == [] and _cases(server) == []
    assert server.state.webhooks.rejected_counts() == {(provider, 401): len(bad)}
    with server.client() as c:
        assert f'soc_agent_webhook_rejected_total{{provider="{provider}",status="401"}} {len(bad)}' \
            in c.get("/metrics").text
    # The same delivery, correctly authenticated, goes through: the refusals were about the proof alone.
    assert _deliver(server, provider, body, _native_headers(provider, body)).status_code == 200


def test_jira_retry_and_a_replay_under_a_new_delivery_id_are_processed_once(kit, start_server):
    server = start_server(webhook_config=_native_config())
    body = json.dumps(_jira_sample_created(kit)).encode()
    first = _deliver(server, "jira", body, _native_headers("jira", body, "wh-1"))
    retry = _deliver(server, "jira", body, _native_headers("jira", body, "wh-1"))  # Jira's own retry
    replay = _deliver(server, "jira", body, _native_headers("jira", body, "wh-forged-2"))  # same body, new id
    assert first.status_code == retry.status_code == replay.status_code == 200
    assert first.json()["kind"] == "created"
    assert retry.json()["status"] == replay.json()["status"] == "duplicate"
    assert len(_cases(server)) == 1
    assert [(e.outcome, e.kind) for e in _events(server)] == [("accepted", "created")]  # replays grow nothing
    # The same delivery id on a body re-serialised differently: still the one event.
    again = json.dumps(_jira_sample_created(kit), indent=1).encode()
    response = _deliver(server, "jira", again, _native_headers("jira", again, "wh-1"))
    assert response.status_code == 200 and response.json()["status"] == "duplicate"
    assert len(_cases(server)) == 1


def test_servicenow_and_thehive_redeliveries_are_processed_once(kit, start_server):
    server = start_server(webhook_config=_native_config())
    record = _sn_sample_created(kit)
    for body in (json.dumps(record).encode(), json.dumps(record, indent=2).encode()):
        assert _deliver(server, "servicenow", body, _native_headers("servicenow", body)).status_code == 200
    hive = _hive_sample_created(kit)
    for body in (json.dumps(hive).encode(), json.dumps(hive, indent=2).encode()):
        assert _deliver(server, "thehive", body, _native_headers("thehive", body)).status_code == 200
    assert len({c.id for c in _cases(server)}) == 2  # one per ticket, not one per delivery
    assert [(e.provider, e.outcome) for e in _events(server)] == [
        ("servicenow", "accepted"), ("servicenow", "duplicate"), ("thehive", "accepted"), ("thehive", "duplicate")]
    # A later version of the ServiceNow record (sys_mod_count moved on) is a new event.
    update = {"result": {**record["result"], "sys_mod_count": "1", "sys_updated_on": "2020-04-06 13:10:02",
                         "comments": "second look: still suspicious"}}
    body = json.dumps(update).encode()
    assert _deliver(server, "servicenow", body, _native_headers("servicenow", body)).json()["kind"] == "comment"


def test_native_event_ids_need_their_vendor_ids():
    assert webhooks._servicenow({"result": {"number": "INC1", "comments": "x"}}, {}).event_id == ""
    with_version = webhooks._servicenow({"sys_id": "a1", "sys_mod_count": "2", "sys_updated_on": "t"}, {})
    assert with_version.event_id == "a1:2:t"
    one = webhooks._servicenow({"sys_id": "a1", "comments": "one"}, {})
    two = webhooks._servicenow({"sys_id": "a1", "comments": "two"}, {})
    assert one.event_id and one.event_id != two.event_id  # no version fields: keyed by content, not collapsed
    hive = webhooks._thehive(shared_sample("ticketing", "thehive5_audit_event_case_status_update.json"), {})
    assert hive.event_id == "~327684328:1694441999960"
    assert webhooks._thehive({"objectType": "case", "operation": "update", "object": {"id": "~1"}}, {}).event_id == ""


def _raw_status(server, path: str, headers: dict[str, str]) -> int:
    """Send only a request head declaring a 2 GB body; the status line that comes back without it."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(server.url)
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((url.hostname, url.port), timeout=20) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n" not in data:
            piece = sock.recv(4096)
            if not piece:
                break
            data += piece
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize("provider", ["jira", "servicenow", "thehive"])
def test_oversized_native_delivery_is_413_before_reading(kit, start_server, monkeypatch, provider):
    monkeypatch.setenv("SOC_AGENT_BODY_TIMEOUT_S", "120")  # a 413 within the socket timeout did not wait
    server = start_server(webhook_config=_native_config())
    headers = _native_headers(provider, b"{}") | {"Content-Length": str(2 * 1024**3)}
    assert _raw_status(server, f"/webhooks/{provider}", headers) == 413
    oversize = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'  # sent, and correctly authenticated
    assert _deliver(server, provider, oversize, _native_headers(provider, oversize)).status_code == 413
    assert server.state.webhooks.rejected_counts() == {(provider, 413): 2}
    assert _events(server) == []


def test_settings_from_the_environment(monkeypatch):
    env = {"SOC_AGENT_WEBHOOK_SECRET": "shared-secret",
           "SOC_AGENT_WEBHOOK_AUTH_JIRA": "hub-signature", "SOC_AGENT_WEBHOOK_SECRET_JIRA": "jira-secret",
           "SOC_AGENT_WEBHOOK_AUTH_SERVICENOW": "Basic", "SOC_AGENT_WEBHOOK_USERNAME_SERVICENOW": "svc",
           "SOC_AGENT_WEBHOOK_PASSWORD_SERVICENOW": "pw", "SOC_AGENT_WEBHOOK_HEADER_SERVICENOW": "X-Shared",
           "SOC_AGENT_WEBHOOK_HEADER_SECRET_SERVICENOW": "hv"}
    config = webhooks.WebhookConfig.from_env(env)
    assert config.auth_for("jira") == webhooks.ProviderAuth(scheme="hub-signature", secret="jira-secret")
    sn = config.auth_for("servicenow")
    assert (sn.scheme, sn.username, sn.password, sn.header, sn.header_secret) == \
        ("basic", "svc", "pw", "X-Shared", "hv")
    # Unset: today's scheme with today's secret (backward compatible).
    assert config.auth_for("thehive") == webhooks.ProviderAuth(scheme="soc-agent", secret="shared-secret")
    assert "shared-secret" not in repr(config) and "pw" not in repr(sn)
    for broken, names in [({"SOC_AGENT_WEBHOOK_AUTH_THEHIVE": "oauth"}, "unknown scheme"),
                          ({"SOC_AGENT_WEBHOOK_AUTH_THEHIVE": "bearer"}, "no token"),
                          ({"SOC_AGENT_WEBHOOK_AUTH_SERVICENOW": "basic", "SOC_AGENT_WEBHOOK_USERNAME_SERVICENOW": "u"},
                           "no username or password"),
                          ({"SOC_AGENT_WEBHOOK_AUTH_THEHIVE": "bearer", "SOC_AGENT_WEBHOOK_TOKEN_THEHIVE": "t",
                            "SOC_AGENT_WEBHOOK_HEADER_THEHIVE": "Bad Header:"}, "header")]:
        with pytest.raises(webhooks.WebhookConfigError, match=names):
            webhooks.WebhookConfig.from_env(broken)
    # A provider left alone without any secret is not an error: it accepts nothing.
    assert webhooks.WebhookConfig.from_env({}).auth_for("jira").problem() == "no secret"


def test_serve_with_an_unusable_webhook_setting_is_one_line_exit_2_and_creates_nothing(tmp_path, kit):
    import os
    import subprocess
    import sys

    workdir = tmp_path / "never-created"
    env = {**os.environ, "SOC_AGENT_WEBHOOK_AUTH_SERVICENOW": "basic", "SOC_AGENT_WEBHOOK_USERNAME_SERVICENOW": "svc",
           "SOC_AGENT_WEBHOOK_PASSWORD_SERVICENOW": "pw", "SOC_AGENT_WEBHOOK_HEADER_SERVICENOW": "X-Shared: oops",
           "SOC_AGENT_WEBHOOK_HEADER_SECRET_SERVICENOW": "v"}
    try:
        done = subprocess.run([sys.executable, "-m", "soc_agent.cli", "serve", "--workdir", str(workdir),
                               "--port", str(kit.free_port())], env=env, capture_output=True, text=True, timeout=120,
                              check=False)
    except subprocess.TimeoutExpired:  # it started serving instead of refusing
        raise AssertionError("serve started with an unusable webhook setting") from None
    assert done.returncode == 2, done.stderr
    # One line, however long the message, and no secret in it.
    assert done.stderr.strip() == \
        "SOC_AGENT_WEBHOOK_AUTH_SERVICENOW=basic: a shared header needs a valid header name and a value"
    assert not workdir.exists()
