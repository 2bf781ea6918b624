"""Edits through the queue: a shorter TTL runs; a policy-denied edit never does."""

from __future__ import annotations

from sqlmodel import select

from soc_agent.policy import PolicyRule
from soc_agent.runners.approvals import ApprovalQueue, Invalid
from soc_agent.runners.auth import Identity, Role
from soc_agent.store import ActionRow, ContainmentRow
from soc_agent.types import Outcome
from tests.conftest import make_alert

BAD_IP = make_alert("connection_to_known_bad_ip", [("ip", "203.0.113.45", "dst"), ("host", "wks-17", "src")],
                    alert_id="c2-1")


def _pending_block(pipeline) -> ApprovalQueue:
    pipeline.services.policy.rules.append(PolicyRule(name="blocks-need-a-person", when='action == "block_ip"',
                                                     outcome=Outcome.NEEDS_APPROVAL, reason="test"))
    assert pipeline.process_line(BAD_IP)[0].status == "pending_approval"
    return ApprovalQueue(pipeline)


def test_edit_to_a_shorter_ttl_executes_with_that_ttl(pipeline):
    queue = _pending_block(pipeline)
    item = queue.list()[0]
    assert queue.show(item["id"])["params"]["ttl_seconds"] == 86400
    result = queue.edit(item["id"], Identity("bo.analyst", Role.ANALYST), "an hour is enough",
                        params={"ttl_seconds": 3600})
    assert result["action_status"] == "executed"
    action = pipeline.store.session.exec(select(ActionRow).where(ActionRow.status == "done")).one()
    assert '"ttl_seconds": 3600' in action.params and action.approved_by == "bo.analyst"
    assert pipeline.store.session.get(ContainmentRow, ("blocked_ip", "203.0.113.45")).active


def test_an_edit_the_guard_denies_is_refused_before_anything_changes(pipeline):
    queue = _pending_block(pipeline)
    item = queue.list()[0]
    pipeline.services.policy.block.own_ranges.append("203.0.113.0/24")  # now a never-block address
    try:
        queue.edit(item["id"], Identity("bo.analyst", Role.ANALYST), params={"ttl_seconds": 60})
    except Invalid as exc:
        assert "never block" in str(exc)
    else:
        raise AssertionError("the edit should have been refused")
    assert queue.list()[0]["status"] == "pending"
    assert pipeline.store.session.exec(select(ContainmentRow)).all() == []
