"""The agent's notes posted back to linked tickets through the Jira, ServiceNow and TheHive responders."""

from __future__ import annotations

import pytest
from sqlmodel import select

from connectors.errors import ConfigError
from connectors.jira import JiraResponder
from connectors.secrets import Secret
from connectors.servicenow import ServiceNowResponder
from connectors.thehive import TheHiveResponder
from connectors.ticket_sink import ResponderTicketSink
from connectors.base import ResponderError
from soc_agent.runners.tables import TicketLinkRow, TicketPostRow
from soc_agent.runners.webhooks import MARKER, TicketPoster
from soc_agent.store import Store
from soc_agent.types import to_db_time, utcnow
from tests.connectors.test_ticketing import NOW, FakeJira, FakeServiceNow, FakeTheHive, _action, _client

SYS_ID = "9d385017c611228701d22104cc95c371"


def _responders():
    jira, snow, hive = FakeJira(), FakeServiceNow({"result": {
        "sys_id": SYS_ID, "number": "INC0010007", "state": "1", "active": "true", "correlation_id": ""}}), FakeTheHive()
    responders = [JiraResponder(_client("jira", jira), project="SOC"),
                  ServiceNowResponder(_client("servicenow", snow)),
                  TheHiveResponder(_client("thehive", hive, type="bearer", secret=Secret("hive-key")))]
    return (jira, snow, hive), responders


def test_each_provider_gets_its_post_through_its_own_responder():
    (jira, snow, hive), responders = _responders()
    responders[1].execute(_action("open_ticket"), "c1", 1, NOW)  # the incident the webhook would link
    sink = ResponderTicketSink(responders)
    assert sink.providers == {"jira", "servicenow", "thehive"}
    sink.post("jira", "SOC-7", "triage", f"{MARKER} verdict true_positive")
    sink.post("servicenow", "INC0010007", "triage", f"{MARKER} verdict benign_positive")
    sink.post("servicenow", SYS_ID, "status", f"{MARKER} closed")
    sink.post("thehive", "~8192", "triage", f"{MARKER} note")
    assert jira.comments == [("SOC-7", f"{MARKER} verdict true_positive")]
    assert [p["work_notes"] for p in snow.patches] == [f"{MARKER} verdict benign_positive", f"{MARKER} closed"]
    assert hive.comments == [f"{MARKER} note"]


@pytest.mark.parametrize("provider, ticket_id", [
    ("jira", "SOC-7/../../myself"), ("jira", "SOC-7?expand=x"), ("servicenow", "INC1^ORnumber!=x"),
    ("servicenow", "../sys_user"), ("thehive", "~1/../../user"), ("thehive", ""),
])
def test_a_ticket_id_that_is_not_an_id_never_reaches_a_url(provider, ticket_id):
    (jira, snow, hive), responders = _responders()
    with pytest.raises(ResponderError):
        ResponderTicketSink(responders).post(provider, ticket_id, "triage", f"{MARKER} x")
    assert not jira.comments and not snow.patches and not hive.comments


def test_a_provider_without_a_responder_is_refused_and_the_poster_records_the_failure(tmp_path):
    sink = ResponderTicketSink([])
    with pytest.raises(ConfigError):
        sink.post("jira", "SOC-1", "triage", "x")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        store.session.add(TicketLinkRow(provider="jira", ticket_id="SOC-1", case_id="c1",
                                        created_at=to_db_time(utcnow())))
        store.commit()
        TicketPoster(sink, store).post_case("c1", "triage", "verdict true_positive")
        [row] = store.session.exec(select(TicketPostRow)).all()
        assert row.status == "failed: ConfigError" and row.attempts == 1  # a configuration gap is not retried
    finally:
        store.close()


def test_the_poster_delivers_to_every_linked_ticket_through_the_responders(tmp_path):
    (jira, snow, hive), responders = _responders()
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        for provider, ticket in (("jira", "SOC-9"), ("thehive", "~8192")):
            store.session.add(TicketLinkRow(provider=provider, ticket_id=ticket, case_id="c2",
                                            created_at=to_db_time(utcnow())))
        store.commit()
        TicketPoster(ResponderTicketSink(responders), store).post_case("c2", "triage", "isolated wks-042")
        rows = store.session.exec(select(TicketPostRow)).all()
        assert {(r.provider, r.status) for r in rows} == {("jira", "sent"), ("thehive", "sent")}
        assert jira.comments == [("SOC-9", f"{MARKER} isolated wks-042")]
        assert hive.comments == [f"{MARKER} isolated wks-042"]
    finally:
        store.close()


def _configured(tmp_path, grant: str):
    import httpx

    from connectors.loader import build_responders, load_connectors_config
    from connectors.secrets import SecretStore

    path = tmp_path / "connectors.yml"
    path.write_text(f"""
connectors:
  tickets:
    type: jira
    base_url: https://acme.atlassian.net
    auth: {{type: basic, username: soc@acme.example, secret: JIRA_TOKEN}}
    grant: [{grant}]
    options: {{project: SOC}}
""")
    jira = FakeJira()
    responders = build_responders(load_connectors_config(path), SecretStore({"JIRA_TOKEN": "t"}),
                                  transport=httpx.MockTransport(jira))
    return jira, responders


def test_a_configured_responder_posts_only_with_the_annotate_grant(tmp_path):
    jira, responders = _configured(tmp_path, "ticket.create, case.annotate")
    sink = ResponderTicketSink(responders)
    assert sink.providers == {"jira"}
    sink.post("jira", "SOC-3", "triage", f"{MARKER} hello")
    assert jira.comments == [("SOC-3", f"{MARKER} hello")]

    jira, responders = _configured(tmp_path, "ticket.create, ticket.close")
    assert ResponderTicketSink(responders).providers == frozenset()  # least privilege: no comment rights
    with pytest.raises(ResponderError, match="not granted"):
        responders[0].post_to_ticket("SOC-3", "x")
    assert jira.comments == []
