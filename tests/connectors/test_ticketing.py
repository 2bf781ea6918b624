"""Jira, ServiceNow and TheHive: create, comment, close, and rollback of open_ticket."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from connectors.http import AuthConfig, HttpConfig, make_client
from connectors.jira import JiraResponder
from connectors.secrets import Secret
from connectors.servicenow import ServiceNowResponder
from connectors.thehive import TheHiveResponder
from soc_agent.types import ProposedAction, Tier

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "payloads" / "ticketing"
NOW = datetime(2026, 11, 21, tzinfo=timezone.utc)


def _load(name: str):
    return json.loads((FIXTURES / name).read_text())


def _shared(name: str):
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"shared payload {path} not present")
    return json.loads(path.read_text())


def _client(connector: str, handler, **auth):
    auth = auth or {"type": "basic", "username": "soc@example.com", "secret": Secret("api-token")}
    return make_client(HttpConfig(connector=connector, base_url="https://tickets.example", auth=AuthConfig(**auth)),
                       httpx.MockTransport(handler))


def _action(name: str, **params) -> ProposedAction:
    capability = {"open_ticket": "ticket.create", "close_ticket": "ticket.close", "annotate_case": "case.annotate"}
    return ProposedAction(name=name, tier=Tier.OBSERVE, capability=capability[name], params=params,
                          rollback="close_ticket" if name == "open_ticket" else None)


# ---- Jira ---------------------------------------------------------------------


class FakeJira:
    def __init__(self) -> None:
        self.issues: dict[str, dict] = {}
        self.comments: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/rest/api/3/search/jql":
            jql = request.url.params["jql"]
            hits = [{"id": i["id"], "key": k} for k, i in self.issues.items()
                    if f'labels = "{i["label"]}"' in jql and i["status"] != "done"]
            return httpx.Response(200, json={"issues": hits, "isLast": True})
        if path == "/rest/api/3/issue" and method == "POST":
            fields = json.loads(request.content)["fields"]
            assert fields["description"]["type"] == "doc"
            created = _load("jira_issue_created.json")
            self.issues[created["key"]] = {"id": created["id"], "label": fields["labels"][1], "status": "new",
                                           "summary": fields["summary"]}
            return httpx.Response(201, json=created)
        key = path.split("/")[5] if path.startswith("/rest/api/3/issue/") else ""
        if path.endswith("/comment"):
            body = json.loads(request.content)["body"]
            self.comments.append((key, body["content"][0]["content"][0]["text"]))
            return httpx.Response(201, json={"id": "10000"})
        if path.endswith("/transitions") and method == "GET":
            return httpx.Response(200, json=_load("jira_transitions.json"))
        if path.endswith("/transitions") and method == "POST":
            assert json.loads(request.content) == {"transition": {"id": "31"}}
            self.issues[key]["status"] = "done"
            return httpx.Response(204)
        return httpx.Response(404, json={"errorMessages": ["Issue does not exist"]})


def test_jira_create_comment_close_and_idempotent_create():
    jira = FakeJira()
    responder = JiraResponder(_client("jira", jira), project="SOC")
    assert responder.execute(_action("open_ticket", title="Brute force"), "c1", 1, NOW)["ticket"] == "SOC-22"
    assert jira.issues["SOC-22"]["label"] == "soc-case-c1" and jira.issues["SOC-22"]["summary"] == "Brute force"
    assert responder.execute(_action("open_ticket"), "c1", 1, NOW)["already_open"] is True
    assert responder.execute(_action("annotate_case", text="blocked 1.2.3.4"), "c1", 2, NOW)["annotated"]
    assert jira.comments == [("SOC-22", "blocked 1.2.3.4")]
    assert responder.execute(_action("close_ticket"), "c1", 3, NOW)["closed"] is True
    assert jira.issues["SOC-22"]["status"] == "done"
    assert responder.execute(_action("annotate_case"), "c1", 4, NOW)["annotated"] is False


def test_jira_rollback_of_open_ticket_closes_the_issue():
    jira = FakeJira()
    responder = JiraResponder(_client("jira", jira), project="SOC")
    responder.execute(_action("open_ticket"), "c1", 1, NOW)
    assert responder.rollback(_action("open_ticket"), "c1", NOW)["closed"] is True
    assert jira.issues["SOC-22"]["status"] == "done"
    assert responder.rollback(_action("open_ticket"), "c1", NOW)["already_closed"] is True


# ---- ServiceNow -------------------------------------------------------------------


class FakeServiceNow:
    def __init__(self, create_response: dict) -> None:
        self.create_response = create_response
        self.rows: dict[str, dict] = {}
        self.patches: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/api/now/table/incident" and method == "GET":
            query = request.url.params["sysparm_query"]
            if query.startswith("number="):
                hits = [{"sys_id": s} for s, r in self.rows.items() if query == f"number={r['number']}"]
                return httpx.Response(200, json={"result": hits})
            hits = [{"sys_id": s, "number": r["number"], "state": r["state"]} for s, r in self.rows.items()
                    if query == f"correlation_id={r['correlation_id']}^active=true" and r["state"] not in ("6", "7")]
            return httpx.Response(200, json={"result": hits})
        if path == "/api/now/table/incident" and method == "POST":
            fields = json.loads(request.content)
            result = dict(self.create_response["result"])
            result.update(correlation_id=fields["correlation_id"], short_description=fields["short_description"])
            self.rows[result["sys_id"]] = result
            return httpx.Response(201, json={"result": result})
        if path.startswith("/api/now/table/incident/") and method == "PATCH":
            sys_id = path.rsplit("/", 1)[1]
            fields = json.loads(request.content)
            self.patches.append(fields)
            self.rows[sys_id].update(fields)
            return httpx.Response(200, json={"result": self.rows[sys_id]})
        return httpx.Response(404, json={"error": {"message": "No Record found"}, "status": "failure"})


@pytest.fixture(params=["own", "shared"])
def servicenow(request) -> FakeServiceNow:
    if request.param == "shared":
        return FakeServiceNow(_shared("servicenow_table_api_incident_create_response.json"))
    return FakeServiceNow({"result": {"sys_id": "9d385017c611228701d22104cc95c371", "number": "INC0010007",
                                      "state": "1", "active": "true", "correlation_id": ""}})


def test_servicenow_create_work_note_close(servicenow):
    responder = ServiceNowResponder(_client("servicenow", servicenow))
    created = responder.execute(_action("open_ticket"), "c1", 1, NOW)
    assert created["ticket"] == "INC0010007"
    assert responder.execute(_action("open_ticket"), "c1", 1, NOW)["already_open"] is True
    responder.execute(_action("annotate_case", text="host isolated"), "c1", 2, NOW)
    assert servicenow.patches[0] == {"work_notes": "host isolated"}
    assert responder.execute(_action("close_ticket"), "c1", 3, NOW)["closed"] is True
    assert servicenow.patches[-1]["state"] == "6" and servicenow.patches[-1]["close_code"]


def test_servicenow_rollback_of_open_ticket_resolves_the_incident(servicenow):
    responder = ServiceNowResponder(_client("servicenow", servicenow))
    responder.execute(_action("open_ticket"), "c1", 1, NOW)
    assert responder.rollback(_action("open_ticket"), "c1", NOW)["closed"] is True
    assert responder.rollback(_action("open_ticket"), "c1", NOW)["already_closed"] is True


# ---- TheHive ------------------------------------------------------------------------


class FakeTheHive:
    def __init__(self) -> None:
        self.cases: dict[str, dict] = {}
        self.comments: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        assert request.headers["Authorization"] == "Bearer hive-key"
        if path == "/api/v1/query":
            tag = json.loads(request.content)["query"][1]["_eq"]["_value"]
            return httpx.Response(200, json=[c for c in self.cases.values() if tag in c["tags"]])
        if path == "/api/v1/case" and method == "POST":
            body = json.loads(request.content)
            case = _load("thehive5_case.json")
            case.update(title=body["title"], tags=body["tags"])
            self.cases[case["_id"]] = case
            return httpx.Response(201, json=case)
        if path.endswith("/comment"):
            self.comments.append(json.loads(request.content)["message"])
            return httpx.Response(201, json={"_id": "~1", "message": self.comments[-1]})
        if method == "PATCH":
            case = self.cases[path.rsplit("/", 1)[1]]
            body = json.loads(request.content)
            case.update(status=body["status"], stage="Closed", summary=body["summary"])
            return httpx.Response(204)
        return httpx.Response(404, json={"type": "NotFoundError", "message": "not found"})


def test_thehive_create_comment_close_and_rollback():
    hive = FakeTheHive()
    responder = TheHiveResponder(_client("thehive", hive, type="bearer", secret=Secret("hive-key")))
    created = responder.execute(_action("open_ticket"), "c1", 1, NOW)
    assert created == {"ticket": 42, "thehive_id": "~8192"}
    assert responder.execute(_action("open_ticket"), "c1", 1, NOW)["already_open"] is True
    responder.execute(_action("annotate_case", text="note"), "c1", 2, NOW)
    assert hive.comments == ["note"]
    assert responder.rollback(_action("open_ticket"), "c1", NOW)["closed"] is True
    assert hive.cases["~8192"]["stage"] == "Closed" and hive.cases["~8192"]["status"] == "Other"
    assert responder.execute(_action("close_ticket"), "c1", 3, NOW)["already_closed"] is True


def test_thehive4_case_object_is_understood_as_open():
    case = _shared("thehive4_api_case_object.json")
    case["tags"] = [*case.get("tags", []), "soc-case:c9"]
    responder = TheHiveResponder(_client("thehive", lambda r: httpx.Response(200, json=[case]),
                                         type="bearer", secret=Secret("k")))
    assert responder.execute(_action("open_ticket"), "c9", 1, NOW)["already_open"] is True
