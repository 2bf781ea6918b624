"""load_case: the case the rest of the graph reasons about, loaded from the store."""

from __future__ import annotations

from langgraph.runtime import Runtime

from soc_agent.nodes.load_case import load_cases
from soc_agent.store import AlertRow, CaseRow
from tests.conftest import make_alert
from tests.soc_agent.nodes.node_kit import call, stored_case

HOST = "kiosk01.corp.example"
C2 = make_alert("connection_to_known_bad_ip", [("host", HOST, "src"), ("ip", "198.51.100.140", "dst")],
                alert_id="c-1", minutes_ago=30)
EXFIL = make_alert("exfil_unusual_destination", [("host", HOST, "src"), ("ip", "198.51.100.140", "dst"),
                                                 ("domain", "files-transfer.test", "dst")],
                   alert_id="c-2", minutes_ago=10, severity="critical", bytes_out=900_000_000)


def test_the_case_holds_its_alerts_oldest_first_its_entities_and_its_detections(svc):
    state = stored_case(svc, EXFIL, C2, case_id="case-k")  # stored out of order: the load sorts by time
    update = call("load_case", state, svc)
    case = update["case"]
    assert case.id == "case-k"
    assert [a.id for a in case.alerts] == ["c-1", "c-2"]
    assert case.detections == ["connection_to_known_bad_ip", "exfil_unusual_destination"]
    assert sorted(e.key for e in case.entities) == ["domain:files-transfer.test", "host:kiosk01.corp.example",
                                                    "ip:198.51.100.140"]
    assert str(case.max_severity) == "critical"
    assert update["trace"] == ["load_case: 2 distinct alert(s), 3 entities, 0 duplicate(s)"]


def test_duplicates_and_raw_events_are_counted_not_reasoned_about(svc):
    state = stored_case(svc, C2, case_id="case-k")
    duplicate = AlertRow(key="native:c-1-again", alert_id="c-1-again", source="native", kind="alert",
                         rule_id="connection_to_known_bad_ip", case_id="case-k", fingerprint="f",
                         duplicate_of="native:c-1", ts=state["alert"].timestamp, received_at=state["alert"].timestamp,
                         payload=state["alert"].model_copy(update={"id": "c-1-again"}).model_dump_json())
    event = AlertRow(key="native:ev-1", alert_id="ev-1", source="native", kind="event", rule_id="auth_failure",
                     case_id="case-k", fingerprint="g", ts=state["alert"].timestamp,
                     received_at=state["alert"].timestamp,
                     payload=state["alert"].model_copy(update={"id": "ev-1", "kind": "event",
                                                               "rule_id": "auth_failure"}).model_dump_json())
    svc.store.session.add_all([duplicate, event])
    svc.store.session.get(CaseRow, "case-k").duplicate_count = 1
    svc.store.session.flush()
    case = call("load_case", state, svc)["case"]
    assert [a.id for a in case.alerts] == ["c-1"]
    assert case.duplicate_count == 1


def test_another_cases_alerts_never_leak_in(svc):
    stored_case(svc, EXFIL, case_id="case-other")
    case = call("load_case", stored_case(svc, C2, case_id="case-k"), svc)["case"]
    assert [a.id for a in case.alerts] == ["c-1"]
    assert "domain:files-transfer.test" not in {e.key for e in case.entities}


def test_a_huge_case_is_reasoned_about_from_its_latest_hundred_alerts(svc):
    lines = [make_alert("port_scan", [("ip", "198.51.100.7", "src")], alert_id=f"s-{i}", minutes_ago=200 - i,
                        ports=i) for i in range(105)]
    case = call("load_case", stored_case(svc, *lines, case_id="case-big"), svc)["case"]
    assert len(case.alerts) == 100
    assert case.alerts[0].id == "s-5" and case.alerts[-1].id == "s-104", "the oldest five were left out"


def test_the_batch_form_loads_each_runs_own_case(svc):
    one = stored_case(svc, C2, case_id="case-k")
    two = stored_case(svc, EXFIL, case_id="case-x")
    batch = load_cases([one, two], Runtime(context=svc))
    assert [u["case"].id for u in batch] == ["case-k", "case-x"]
    assert batch == [call("load_case", one, svc), call("load_case", two, svc)]
