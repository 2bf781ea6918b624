"""Approvals in a fleet: the server records the decision, the worker owning the case's partition resumes the run.

The real app under uvicorn on Postgres with ``to_broker`` set, the real Redis,
and real ``Worker`` objects consuming the partitions (see test_server_broker).
"""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from soc_agent.audit import AuditRecord, verify
from soc_agent.config import Settings
from soc_agent.fleet import Broker, BrokerConfig, Worker, WorkerStats
from soc_agent.fleet.tables import InboxRow, ResumeRow
from soc_agent.store import ActionRow, ApprovalRow
from tests.soc_agent.fleet.fleet_kit import broker_config, pg_url  # noqa: F401  (fixtures)
from tests.soc_agent.runners.test_server_broker import settings  # noqa: F401  (fixture)


def _rows(server, table, *where):
    with server.state.pipeline.store.reader() as session:
        return session.exec(select(table).where(*where)).all()


def _audit(server, kind: str) -> list[dict]:
    return [json.loads(r.payload) for r in _rows(server, AuditRecord, AuditRecord.kind == kind)]


def _work(base: Settings, config: BrokerConfig, tmp_path, worker_id: str, idle_exit_s: float = 2,
          setup=None, **patch) -> WorkerStats:
    """Run a worker until idle; ``patch`` replaces broker methods, ``setup(worker)`` changes anything else."""
    worker = Worker(base.model_copy(update={"workdir": tmp_path / worker_id}), config, worker_id=worker_id,
                    batch=20)
    for name, value in patch.items():
        setattr(worker.broker, name, value)
    if setup is not None:
        setup(worker)
    return worker.run(idle_exit_s=idle_exit_s)


def _resume_entries(broker: Broker, partition: int) -> list:
    return [(entry_id, fields) for entry_id, fields in broker.redis.xrange(broker.stream(partition))
            if fields.get(b"kind") == b"resume"]


@pytest.fixture
def paused(kit, start_server, settings, broker_config, tmp_path, monkeypatch):  # noqa: F811
    """A server in fleet mode with one paused case filed by a worker, whose approval is then decided."""
    server = start_server()
    with server.client("analyst") as http:
        answer = http.post("/api/alerts", content=kit.exec_travel)
    assert answer.status_code == 202, answer.text
    [queued] = answer.json()["queued"]
    _work(settings, broker_config, tmp_path, "w-intake")
    with server.client("analyst2") as http:
        [item] = http.get("/api/approvals").json()

    # The server must never run a paused graph in fleet mode: any attempt fails the decision loudly.
    def not_here(*_args, **_kwargs):
        raise AssertionError("the server resumed a paused run itself")

    monkeypatch.setattr(server.state.pipeline, "resume_answer", not_here)
    monkeypatch.setattr(server.state.pipeline, "resume", not_here)
    monkeypatch.setattr(server.state.pipeline.graph, "invoke", not_here)
    return server, item, queued["partition"]


def _approve(server, item) -> dict:
    with server.client("analyst2") as http:
        answer = http.post(f"/api/approvals/{item['id']}/approve", json={"comment": "confirmed with the CEO"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_approval_decided_through_the_server_is_run_by_the_worker_owning_the_partition(
        paused, settings, broker_config, tmp_path):  # noqa: F811
    server, item, partition = paused
    broker = Broker(broker_config)
    answer = _approve(server, item)
    assert answer["status"] == "approved" and answer["resume"] == f"queued to partition {partition}"
    assert answer["partition"] == partition and answer["action_status"] == "queued"

    # Recorded by the server (claim, audit) and queued; nothing ran: the thread is still paused, no action row.
    [approval] = _rows(server, ApprovalRow, ApprovalRow.id == item["id"])
    assert (approval.status, approval.decided_by) == ("approved", "cy.analyst")
    assert server.state.pipeline.is_paused(item["thread_id"])
    assert _rows(server, ActionRow, ActionRow.case_id == item["case_id"]) == []
    [(entry_id, fields)] = _resume_entries(broker, partition)
    assert json.loads(fields[b"raw"])["approval_id"] == item["id"]
    with server.client("viewer") as http:
        shown = http.get(f"/api/approvals/{item['id']}").json()
    assert shown["resume"]["state"] == f"queued to partition {partition}"

    stats = _work(settings, broker_config, tmp_path, "w-owner")
    assert stats.resumed == 1

    [action] = _rows(server, ActionRow, ActionRow.case_id == item["case_id"])
    assert (action.name, action.status, action.approved_by) == ("revoke_sessions", "done", "cy.analyst")
    [resumed] = _audit(server, "approval.resumed")
    assert resumed["worker"] == "w-owner" and resumed["approval_id"] == item["id"] and resumed["ran"] is True
    assert resumed["message"] == f"{partition}:{entry_id.decode()}" and resumed["action_id"] == action.id
    [row] = _rows(server, ResumeRow)
    assert (row.worker, row.action_status, row.action_id) == ("w-owner", "executed", action.id)
    assert not server.state.pipeline.is_paused(item["thread_id"])
    # The item and its case show what the worker did.
    with server.client("viewer") as http:
        shown = http.get(f"/api/approvals/{item['id']}").json()
        case = http.get(f"/api/cases/{item['case_id']}").json()
    assert shown["resume"]["state"] == "resumed by worker w-owner"
    assert shown["resume"]["action_status"] == "executed"
    assert case["status"] == "contained" and case["actions"][0]["status"] == "executed"
    assert broker.stats()["backlog"] == 0 and broker.pending() == 0
    result = verify(server.state.pipeline.store.engine)
    assert result.ok, result.reason


def test_a_rejection_is_resumed_by_the_owner_and_records_the_action_as_rejected(
        paused, settings, broker_config, tmp_path):  # noqa: F811
    server, item, partition = paused
    with server.client("analyst2") as http:
        answer = http.post(f"/api/approvals/{item['id']}/reject", json={"comment": "travel was expected"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "rejected" and answer.json()["resume"] == f"queued to partition {partition}"
    _work(settings, broker_config, tmp_path, "w-owner")
    [action] = _rows(server, ActionRow, ActionRow.case_id == item["case_id"])
    assert action.status == "rejected"
    [row] = _rows(server, ResumeRow)
    assert (row.decision, row.worker, row.action_status) == ("rejected", "w-owner", "rejected")


def test_a_redelivered_resume_message_does_not_execute_twice(paused, settings, broker_config, tmp_path):  # noqa: F811
    server, item, partition = paused
    broker = Broker(broker_config)
    _approve(server, item)
    # The owner resumes and commits, then dies before acknowledging: the entry stays pending ...
    first = _work(settings, broker_config, tmp_path, "w-dies", ack=lambda messages: None)
    assert first.resumed == 1 and broker.pending() == 1
    # ... and the next owner claims it once idle (XAUTOCLAIM): a redelivery, skipped by its inbox row.
    second = _work(settings, broker_config, tmp_path, "w-next", idle_exit_s=5)
    assert second.claimed >= 1 and second.resumed == 0 and second.skipped_redeliveries >= 1
    [action] = _rows(server, ActionRow, ActionRow.case_id == item["case_id"])
    assert action.status == "done"
    assert [r["worker"] for r in _audit(server, "approval.resumed")] == ["w-dies"]
    assert len([a for a in _audit(server, "action.result") if a["action_id"] == action.id]) == 1
    assert broker.pending() == 0

    # The same decision queued again (another message: a new entry id, so no inbox row) is not run again either.
    [row] = _rows(server, ResumeRow)
    payload = {"approval_id": item["id"], "case_id": item["case_id"], "thread_id": item["thread_id"],
               "decision": "approved", "token": row.token,
               "answer": {"approved": True, "by": "cy.analyst", "comment": "", "params": {}, "approvers": []}}
    broker.queue_resume(partition, json.dumps(payload).encode(), f"approval:{item['id']}")
    third = _work(settings, broker_config, tmp_path, "w-third")
    assert third.resumed == 0 and third.skipped_redeliveries == 1
    assert len(_rows(server, ActionRow, ActionRow.case_id == item["case_id"])) == 1


def test_a_stale_resume_message_is_skipped_and_audited(paused, settings, broker_config, tmp_path):  # noqa: F811
    server, item, partition = paused
    broker = Broker(broker_config)
    # A message whose decision the server never recorded (or put back): its token names no resume row.
    payload = {"approval_id": item["id"], "case_id": item["case_id"], "thread_id": item["thread_id"],
               "decision": "approved", "token": "forged",
               "answer": {"approved": True, "by": "mallory", "comment": "", "params": {}, "approvers": []}}
    broker.queue_resume(partition, json.dumps(payload).encode(), "approval:forged")
    stats = _work(settings, broker_config, tmp_path, "w-owner")
    assert stats.stale_resumes == 1 and stats.resumed == 0
    assert _rows(server, ActionRow, ActionRow.case_id == item["case_id"]) == []
    [skipped] = _audit(server, "approval.resume_skipped")
    assert skipped["approval_id"] == item["id"] and "token" in skipped["reason"]
    [approval] = _rows(server, ApprovalRow, ApprovalRow.id == item["id"])
    assert approval.status == "pending"
    assert server.state.pipeline.is_paused(item["thread_id"])


def test_a_takeover_after_the_decision_and_before_the_resume_runs_it_exactly_once(
        paused, settings, broker_config, tmp_path):  # noqa: F811
    server, item, partition = paused
    broker = Broker(broker_config)
    _approve(server, item)
    # The partition's owner had been handed the resume message and died before running it.
    broker.ensure_group(partition)
    taken = broker.read([partition], "dead-owner", 100, 100)
    assert [m.kind for m in taken] == ["resume"] and broker.pending() == 1
    assert server.state.pipeline.is_paused(item["thread_id"])
    # Claimable once idle for claim_idle_ms: the heir waits long enough to see it.
    heir = _work(settings, broker_config, tmp_path, "w-heir", idle_exit_s=5)
    assert heir.claimed == 1 and heir.resumed == 1
    [action] = _rows(server, ActionRow, ActionRow.case_id == item["case_id"])
    assert action.status == "done"
    assert [r["worker"] for r in _audit(server, "approval.resumed")] == ["w-heir"]
    # Another takeover later finds nothing left to do.
    again = _work(settings, broker_config, tmp_path, "w-later")
    assert again.resumed == 0 and len(_rows(server, ActionRow, ActionRow.case_id == item["case_id"])) == 1
    [inbox] = _rows(server, InboxRow, InboxRow.outcome == "resumed")
    assert inbox.partition == partition and inbox.message_id == f"{partition}:{taken[0].entry_id}"


def test_a_crash_after_the_run_and_before_its_record_is_recorded_on_redelivery_not_run_again(
        paused, settings, broker_config, tmp_path):  # noqa: F811
    server, item, _ = paused
    _approve(server, item)

    def crash_after_the_run(worker) -> None:
        real = worker.pipeline.resume_answer
        crashed = []

        def resume_then_crash(thread_id, answer):
            state = real(thread_id, answer)  # the run's effects are committed ...
            if not crashed:
                crashed.append(1)
                raise RuntimeError("crash before the resume was recorded")  # ... its record is not
            return state

        worker.pipeline.resume_answer = resume_then_crash

    stats = _work(settings, broker_config, tmp_path, "w-owner", setup=crash_after_the_run)
    assert stats.failures == 1 and stats.resumed == 1
    [action] = _rows(server, ActionRow, ActionRow.case_id == item["case_id"])
    assert action.status == "done"
    [row] = _rows(server, ResumeRow)
    assert row.ran is False and row.action_id == action.id and row.action_status == "executed"
    assert [(r["worker"], r["ran"]) for r in _audit(server, "approval.resumed")] == [("w-owner", False)]
    assert len([a for a in _audit(server, "action.result") if a["action_id"] == action.id]) == 1


def test_a_decision_that_cannot_be_queued_is_put_back_and_answered_503(
        paused, settings, broker_config, tmp_path, monkeypatch):  # noqa: F811
    import redis

    server, item, partition = paused
    resumer = server.state.queue.resumer
    working = resumer.broker.queue_resume

    def down(*_args, **_kwargs):
        raise redis.ConnectionError("broker down")

    monkeypatch.setattr(resumer.broker, "queue_resume", down)
    with server.client("analyst2") as http:
        refused = http.post(f"/api/approvals/{item['id']}/approve", json={})
    assert refused.status_code == 503 and "it is pending again, decide again" in refused.json()["detail"]
    [approval] = _rows(server, ApprovalRow, ApprovalRow.id == item["id"])
    assert approval.status == "pending" and approval.decided_by is None
    assert _rows(server, ResumeRow) == [] and _audit(server, "approval.resume_failed")

    monkeypatch.setattr(resumer.broker, "queue_resume", working)  # the broker is back: decide again
    answer = _approve(server, item)
    assert answer["resume"] == f"queued to partition {partition}"
    assert _work(settings, broker_config, tmp_path, "w-owner").resumed == 1
    [action] = _rows(server, ActionRow, ActionRow.case_id == item["case_id"])
    assert action.status == "done"
