"""ingest_alert: the run starts on the record, with the alert that caused it and why."""

from __future__ import annotations

from soc_agent.audit import records
from tests.conftest import make_alert
from tests.soc_agent.nodes.node_kit import audited, call, stored_case

C2 = make_alert("connection_to_known_bad_ip", [("ip", "203.0.113.45", "dst"), ("host", "wks-eng-01.corp.example", "src")],
                alert_id="c2-1")


def test_the_run_start_is_audited_with_the_alert_its_rule_and_why(svc):
    state = stored_case(svc, C2, case_id="case-c2", run=3, material=["new detection", "new indicator ip:x"])
    call("ingest", state, svc)
    [entry] = audited(svc, "case-c2", "node.ingest")
    assert entry == {"run": 3, "alert": f"{state['alert'].source}:c2-1", "rule": "connection_to_known_bad_ip",
                     "material": ["new detection", "new indicator ip:x"]}


def test_the_trace_names_the_rule_and_the_material_change(svc):
    state = stored_case(svc, C2, material=["new case"])
    update = call("ingest", state, svc)
    assert update == {"trace": ["ingest: connection_to_known_bad_ip (new case)"]}, "ingest changes nothing else"


def test_the_audit_record_lands_with_the_runs_writes_or_not_at_all(svc):
    state = stored_case(svc, C2, case_id="case-c2")
    call("ingest", state, svc)
    svc.store.rollback()  # the run's transaction is abandoned (a crash, a failed batch)
    assert [r for r in records(svc.store.engine, "case-c2") if r.kind == "node.ingest"] == []
    call("ingest", state, svc)
    assert len(audited(svc, "case-c2", "node.ingest")) == 1
