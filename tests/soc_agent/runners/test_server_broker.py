"""``soc-agent serve --to-broker``: the real app under uvicorn, publishing to the real Redis, a real worker after.

The server runs on Postgres with ``to_broker`` set and builds its broker from
``SOC_AGENT_BROKER_*`` like ``soc-agent serve`` does; the stream entries it
writes are read back from Redis, then a fleet ``Worker`` files them.
"""

from __future__ import annotations

import json
import time

import pytest
from sqlmodel import select

from connectors import parse_record
from soc_agent.config import DEMO_AUTONOMY, Settings
from soc_agent.fleet import Broker, BrokerConfig, Worker, partition_of
from soc_agent.runners.tables import TicketLinkRow, WebhookEventRow
from soc_agent.runners.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from soc_agent.store import AlertRow, CaseRow, DeadLetterRow
from tests.conftest import make_alert
from tests.soc_agent.fleet.fleet_kit import broker_config, pg_url  # noqa: F401  (fixtures)

HEC_TOKEN = "hec-broker-test-token"


@pytest.fixture
def settings(tmp_path, pg_url, broker_config, monkeypatch):  # noqa: F811
    """Overrides the runners' settings: Postgres, ``to_broker``, and this test's broker prefix in the env."""
    env = {"SOC_AGENT_BROKER_PREFIX": broker_config.prefix, "SOC_AGENT_BROKER_PARTITIONS": broker_config.partitions,
           "SOC_AGENT_BROKER_LEASE_MS": broker_config.lease_ms,
           "SOC_AGENT_BROKER_CLAIM_IDLE_MS": broker_config.claim_idle_ms,
           "SOC_AGENT_BROKER_MAX_ATTEMPTS": broker_config.max_attempts,
           "SOC_AGENT_BROKER_OFFER_WAIT_S": "0.2", "SOC_AGENT_BROKER_RETRY_AFTER_S": "7",
           "SOC_AGENT_HEC_TOKEN": HEC_TOKEN}
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    return Settings(workdir=tmp_path / "server", database_url=pg_url, to_broker=True, autonomy_file=DEMO_AUTONOMY)


def _alert(ip: str, n: int) -> bytes:
    return make_alert("port_scan", [("ip", ip, "src"), ("host", f"web{n}", "dst")], alert_id=f"scan-{ip}-{n}")


def _entries(broker: Broker, partition: int) -> list[dict]:
    return [{k.decode(): v for k, v in fields.items()} | {"id": entry_id.decode()}
            for entry_id, fields in broker.redis.xrange(broker.stream(partition))]


def _signed(body: bytes, secret: str) -> dict[str, str]:
    ts = str(int(time.time()))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body), "Content-Type": "application/json"}


def _jira_created(key: str, alert: bytes, author: str = "reporter.rae") -> bytes:
    return json.dumps({"timestamp": 1, "webhookEvent": "jira:issue_created", "user": {"name": author},
                       "issue": {"id": f"id-{key}", "key": key,
                                 "fields": {"description": f"From SIEM:\n{alert.decode()}"}}}).encode()


def _rows(server, table, *where):
    with server.state.pipeline.store.reader() as session:
        return session.exec(select(table).where(*where)).all()


def _work(settings: Settings, config: BrokerConfig, tmp_path) -> None:
    worker = Worker(settings.model_copy(update={"workdir": tmp_path / "worker"}), config, worker_id="w", batch=20)
    worker.run(idle_exit_s=2)


def test_intake_endpoints_queue_on_the_correlation_partition_and_a_worker_files_them(
        kit, start_server, settings, broker_config, tmp_path):
    server = start_server()
    broker = Broker(broker_config)
    assert server.state.intake is not None, "to_broker set: the server publishes"

    # The alert API: 202 with what was queued, on the partition of the source entity.
    with server.client("analyst") as http:
        answer = http.post("/api/alerts", content=kit.exec_travel)
    assert answer.status_code == 202, answer.text
    [queued] = answer.json()["queued"]
    expected = partition_of("ip:203.0.113.201", broker_config.partitions)
    assert queued == {"alert": "native:travel-1", "partition": expected, "entry": queued["entry"]}
    [entry] = _entries(broker, expected)
    assert entry["id"] == queued["entry"] and entry["raw"] == kit.exec_travel
    assert entry["source"] == b"api:bo.analyst"
    # Nothing was triaged in the server: no alert row until a worker files it.
    assert _rows(server, AlertRow) == []

    # A ticket-created webhook: queued the same way, its event accepted with 202.
    scan = _alert("198.51.100.23", 1)
    body = _jira_created("SOC-1", scan)
    with server.client() as http:
        answer = http.post("/webhooks/jira", content=body, headers=_signed(body, kit.secret))
    assert answer.status_code == 202, answer.text
    [ticket_item] = answer.json()["queued"]
    assert ticket_item["partition"] == partition_of("ip:198.51.100.23", broker_config.partitions)
    [event] = _rows(server, WebhookEventRow)
    assert event.outcome == "accepted" and event.kind == "created" and event.case_id is None

    # HEC: every envelope checked, the good event queued, the unparseable one dead-lettered here.
    hec_body = json.dumps({"event": json.loads(_alert("198.51.100.24", 2)), "sourcetype": "soc"}) + \
        json.dumps({"event": {"no": "rule"}, "sourcetype": "soc"})
    with server.client() as http:
        answer = http.post("/services/collector/event", content=hec_body,
                           headers={"Authorization": f"Splunk {HEC_TOKEN}"})
    assert answer.status_code == 200 and answer.json() == {"text": "Success", "code": 0, "queued": 1,
                                                                 "dead_lettered": 1}, answer.text
    [dead] = _rows(server, DeadLetterRow)
    assert dead.source == "hec:soc"
    assert broker.stats()["backlog"] == 3

    # A worker files everything the server queued, on the partitions it was queued on.
    _work(settings, broker_config, tmp_path)
    assert broker.stats()["backlog"] == 0 and broker.pending() == 0
    keys = {row.key for row in _rows(server, AlertRow)}
    assert {"native:travel-1", ticket_item["alert"], "native:scan-198.51.100.24-2"} <= keys

    # What the in-process path did right away follows once the alerts are filed: the server
    # settles before each approval decision and webhook delivery, and on every sweep.
    # The analyst who submitted the executive's travel alert cannot approve its action ...
    assert _rows(server, TicketLinkRow) == []
    with server.client("analyst") as http:
        [item] = http.get("/api/approvals").json()
        refused = http.post(f"/api/approvals/{item['id']}/approve", json={})
        assert refused.status_code == 403, refused.text
        assert http.get(f"/api/approvals/{item['id']}").json()["requested_by"] == "bo.analyst"
    # ... the ticket is linked to the case its alert opened, so a disposition labels that case ...
    resolved = json.dumps({"timestamp": 2, "webhookEvent": "jira:issue_updated", "user": {"name": "bo.analyst"},
                           "issue": {"id": "id-SOC-1", "key": "SOC-1", "fields": {}},
                           "changelog": {"id": "9", "items": [{"field": "resolution",
                                                                "toString": "False Positive"}]}}).encode()
    with server.client() as http:
        assert http.post("/webhooks/jira", content=resolved, headers=_signed(resolved, kit.secret)).status_code == 200
    [link] = _rows(server, TicketLinkRow)
    [filed] = _rows(server, AlertRow, AlertRow.key == ticket_item["alert"])
    assert (link.provider, link.ticket_id, link.case_id) == ("jira", "SOC-1", filed.case_id)
    [case] = _rows(server, CaseRow, CaseRow.id == filed.case_id)
    assert case.label == "false_positive"
    # ... and the ticket was told the verdict.
    assert any(p["ticket_id"] == "SOC-1" and "triaged by a worker" in p["body"] for p in server.state.sink.posted)


def test_auth_and_parse_failures_never_reach_the_broker(kit, start_server, broker_config):
    server = start_server()
    broker = Broker(broker_config)
    with server.client() as http:
        assert http.post("/api/alerts", content=kit.exec_travel).status_code == 401
    with server.client("viewer") as http:
        assert http.post("/api/alerts", content=kit.exec_travel).status_code == 403
    body = _jira_created("SOC-2", kit.exec_travel)
    with server.client() as http:
        bad = http.post("/webhooks/jira", content=body, headers=_signed(body, "not-the-secret"))
        assert bad.status_code == 401
        assert http.post("/services/collector/event", content=b'{"event": {"a": 1}}',
                         headers={"Authorization": "Splunk wrong"}).status_code == 403
    # An alert the server cannot parse is dead-lettered exactly as in-process: 422, a dead_letters row.
    with server.client("analyst") as http:
        answer = http.post("/api/alerts", content=b'{"id": "no-rule"}')
    assert answer.status_code == 422 and "dead-lettered" in answer.json()["detail"]
    [dead] = _rows(server, DeadLetterRow)
    assert dead.source == "api:bo.analyst" and dead.raw == '{"id": "no-rule"}'
    future = make_alert("port_scan", [("ip", "198.51.100.9", "src")], alert_id="future", minutes_ago=-60)
    with server.client("analyst") as http:
        assert http.post("/api/alerts", content=future).status_code == 422
    assert broker.stats()["backlog"] == 0 and broker.stats()["queued"] == 0


def test_a_full_partition_is_answered_429_with_retry_after_and_nothing_is_lost(
        kit, start_server, settings, broker_config, tmp_path, monkeypatch):
    monkeypatch.setenv("SOC_AGENT_BROKER_HIGH_WATER", "2")
    server = start_server()
    broker = Broker(broker_config)
    lines = [_alert("198.51.100.77", n) for n in range(4)]  # one source: one partition
    partition = partition_of("ip:198.51.100.77", broker_config.partitions)
    codes = []
    with server.client("analyst") as http:
        for line in lines[:3]:
            codes.append(http.post("/api/alerts", content=line))
    assert [r.status_code for r in codes] == [202, 202, 429]
    refused = codes[2]
    assert refused.headers["retry-after"] == "7"
    assert refused.json()["detail"].startswith(f"backpressure: partition {partition} backlog over 2")
    assert len(_entries(broker, partition)) == 2 and broker.stats()["refused"] == 1
    assert _rows(server, DeadLetterRow) == [], "refused, not shed: the sender keeps the alert"

    # The webhook and HEC refuse the same way; the ticket's delivery is not recorded as accepted.
    body = _jira_created("SOC-3", lines[3])
    with server.client() as http:
        hook = http.post("/webhooks/jira", content=body, headers=_signed(body, kit.secret))
        hec = http.post("/services/collector", content=json.dumps({"event": json.loads(lines[3])}),
                        headers={"Authorization": f"Splunk {HEC_TOKEN}"})
    assert hook.status_code == 429 and hook.headers["retry-after"] == "7"
    assert "backpressure" in hook.json()["detail"]
    assert [(e.outcome, e.http_status) for e in _rows(server, WebhookEventRow)] == [("rejected", 429)]
    assert hec.status_code == 503 and hec.json()["code"] == 9 and hec.headers["retry-after"] == "7"
    assert len(_entries(broker, partition)) == 2

    # Workers catch up; the senders' retries are then queued and filed.
    _work(settings, broker_config, tmp_path)
    with server.client("analyst") as http:
        assert http.post("/api/alerts", content=lines[2]).status_code == 202
    with server.client() as http:
        assert http.post("/webhooks/jira", content=body, headers=_signed(body, kit.secret)).status_code == 202
    _work(settings, broker_config, tmp_path)
    keys = {row.key for row in _rows(server, AlertRow)}
    assert {parse_record(line, "auto", 1 << 20).id for line in lines} == {k.split(":", 1)[1] for k in keys}


def test_an_unreachable_broker_is_answered_503_with_retry_after(kit, start_server, monkeypatch):
    closed = kit.free_port()  # nothing listens here
    monkeypatch.setenv("SOC_AGENT_REDIS_URL", f"redis://127.0.0.1:{closed}/0")
    server = start_server()
    with server.client("analyst") as http:
        answer = http.post("/api/alerts", content=kit.exec_travel)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "7"
    assert answer.json()["detail"] == "broker unavailable (ConnectionError); retry later"
    assert _rows(server, DeadLetterRow) == [] and _rows(server, AlertRow) == []
