"""The two-person rule: a crown-jewel or destructive action needs the approvals of two distinct leads."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from soc_agent.audit import records
from soc_agent.runners.approvals import ApprovalQueue, Conflict
from soc_agent.runners.auth import Identity, Role
from soc_agent.store import ActionRow, ApprovalRow, ContainmentRow
from soc_agent.store.tables import ApprovalVoteRow
from tests.soc_agent.test_cli import cli
from tests.soc_agent.test_graph import CROWN_JEWEL_MALWARE

ANA, DI = Identity("ana.lead", Role.LEAD), Identity("di.lead", Role.LEAD)
DC = ("isolated_host", "dc02.corp.example")


def _paused(pipeline) -> tuple[ApprovalQueue, int]:
    assert pipeline.process_line(CROWN_JEWEL_MALWARE)[0].status == "pending_approval"
    queue = ApprovalQueue(pipeline)
    item = queue.list()[0]
    assert (item["action"], item["required_role"]) == ("isolate_host", "lead")
    return queue, item["id"]


def test_one_lead_approving_a_tier0_isolate_leaves_it_pending_saying_it_needs_a_second_approver(pipeline):
    queue, item_id = _paused(pipeline)
    result = queue.approve(item_id, ANA, "owner agreed")
    assert (result["status"], result["action_status"]) == ("pending", "awaiting a second approver")
    assert "two distinct approvers" in result["reasons"][0] and "ana.lead" in result["reasons"][0]
    session = pipeline.store.session
    assert session.get(ApprovalRow, item_id).status == "pending"
    assert session.get(ContainmentRow, DC) is None  # nothing ran
    vote = session.exec(select(ApprovalVoteRow)).one()  # who, when, comment: on the record
    assert (vote.approval_id, vote.approver, vote.role, vote.comment) == (item_id, "ana.lead", "lead", "owner agreed")
    assert vote.created_at is not None
    listed = queue.list()[0]
    assert listed["awaiting_second_approver"] and listed["approvals"][0]["by"] == "ana.lead"
    assert "awaiting a second approver" in listed["approval_reasons"][0]
    assert queue.show(item_id)["approvals"][0]["comment"] == "owner agreed"


def test_the_same_lead_approving_twice_is_refused_with_409(pipeline):
    queue, item_id = _paused(pipeline)
    queue.approve(item_id, ANA)
    with pytest.raises(Conflict) as refused:
        queue.approve(item_id, ANA, "really sure")
    assert refused.value.status_code == 409 and "second, different approver" in str(refused.value)
    assert pipeline.store.session.get(ApprovalRow, item_id).status == "pending"
    assert pipeline.store.session.get(ContainmentRow, DC) is None
    assert "approval.refused" in [r.kind for r in records(pipeline.store.engine)]


def test_a_second_distinct_lead_approving_executes_and_the_guard_names_both(pipeline):
    queue, item_id = _paused(pipeline)
    queue.approve(item_id, ANA, "owner agreed")
    result = queue.approve(item_id, DI, "second pair of eyes")
    assert (result["status"], result["action_status"]) == ("approved", "executed")
    assert result["approvers"] == ["ana.lead", "di.lead"]
    assert any("approved by ana.lead and di.lead" in r for r in result["reasons"])
    session = pipeline.store.session
    assert session.get(ContainmentRow, DC).active
    assert session.exec(select(ActionRow).where(ActionRow.status == "done")).one().approved_by == \
        "ana.lead and di.lead"
    assert [v.approver for v in session.exec(select(ApprovalVoteRow))] == ["ana.lead", "di.lead"]


@pytest.mark.parametrize("rejecter", [ANA, DI])
def test_a_rejection_by_either_lead_ends_it(pipeline, rejecter):
    queue, item_id = _paused(pipeline)
    queue.approve(item_id, ANA)
    result = queue.reject(item_id, rejecter, "not the DC")
    assert (result["status"], result["action_status"]) == ("rejected", "rejected")
    assert pipeline.store.session.get(ContainmentRow, DC) is None
    with pytest.raises(Conflict):
        queue.approve(item_id, DI)


def test_the_first_approval_survives_a_restart(settings):
    from soc_agent.pipeline import Pipeline

    first = Pipeline(settings)
    queue, item_id = _paused(first)
    queue.approve(item_id, ANA)
    first.close()
    second = Pipeline(settings)
    try:
        assert ApprovalQueue(second).approve(item_id, DI)["action_status"] == "executed"
    finally:
        second.close()


def test_the_act_node_re_check_refuses_a_tier0_isolate_resumed_with_one_approver(pipeline):
    """A resume that bypasses the queue with one name does not lift the two-person rule."""
    _paused(pipeline)
    item = pipeline.pending_approvals()[0]
    state = pipeline.resume(item.thread_id, approved=True, by="ana.lead")
    assert state["action_status"] == "denied"
    assert any("two-person rule" in r for r in state["decision"].reason_lines)
    assert pipeline.store.session.get(ContainmentRow, DC) is None


def test_cli_first_approval_awaits_a_second_approver_then_a_second_lead_executes(kit, settings):
    kit.seed(CROWN_JEWEL_MALWARE)
    workdir = settings.workdir
    first = cli("approvals", "approve", "1", "--by", "ana", "--role", "lead", "--comment", "ok", workdir=workdir)
    assert first.returncode == 0, first.stderr
    assert "awaiting a second approver" in first.stdout
    shown = cli("approvals", "show", "1", workdir=workdir)
    assert "approved by ana (lead)" in shown.stdout and "awaiting a second approver" in shown.stdout
    again = cli("approvals", "approve", "1", "--by", "ana", "--role", "lead", workdir=workdir)
    assert again.returncode == 1 and "409" in again.stderr and "second, different approver" in again.stderr
    second = cli("approvals", "approve", "1", "--by", "di", "--role", "lead", workdir=workdir)
    assert second.returncode == 0, second.stderr
    assert "approved by di" in second.stdout and "executed" in second.stdout
    item = json.loads(cli("approvals", "show", "1", "--json", workdir=workdir).stdout)
    assert (item["status"], item["decided_by"]) == ("approved", "ana and di")
