"""An approval item whose exact effect another action already put in place says so, and so do its decisions."""

from __future__ import annotations

import json

from sqlmodel import select

from soc_agent.actions import CATALOG
from soc_agent.policy import PolicyRule
from soc_agent.runners.approvals import ApprovalQueue
from soc_agent.runners.auth import Identity, Role
from soc_agent.store import ActionRow, ContainmentRow, NoteRow
from soc_agent.types import Entity, EntityKind, Outcome, ProposedAction
from tests.conftest import make_alert

BAD_IP = make_alert("connection_to_known_bad_ip", [("ip", "203.0.113.45", "dst"), ("host", "wks-17", "src")],
                    alert_id="c2-1")
BO = Identity("bo.analyst", Role.ANALYST)


def _blocked_elsewhere_then_pending(pipeline) -> tuple[ApprovalQueue, dict, int]:
    """203.0.113.45 already blocked by action N of case other-case; this case's block_ip waits for a person."""
    spec = CATALOG["block_ip"]
    week = ProposedAction(name="block_ip", tier=spec.tier, capability=spec.capability, rollback=spec.rollback,
                          target=Entity(kind=EntityKind.IP, value="203.0.113.45"), params={"ttl_seconds": 7 * 86400})
    earlier = pipeline.services.executor.execute(week, "other-case", 1)  # outlasts the day this case asks for
    pipeline.store.commit()
    pipeline.services.policy.rules.append(PolicyRule(name="blocks-need-a-person", when='action == "block_ip"',
                                                     outcome=Outcome.NEEDS_APPROVAL, reason="test"))
    assert pipeline.process_line(BAD_IP)[0].status == "pending_approval"
    queue = ApprovalQueue(pipeline)
    return queue, queue.list()[0], earlier.id


def test_the_listing_and_show_say_the_effect_is_already_in_effect(pipeline):
    queue, item, earlier = _blocked_elsewhere_then_pending(pipeline)
    expected = f"already in effect (by action {earlier} of case other-case)"
    assert expected in item["already_in_effect"]
    assert any(expected in r for r in item["approval_reasons"])
    assert expected in queue.show(item["id"])["already_in_effect"]


def test_approving_it_creates_no_second_effect_and_says_so(pipeline):
    queue, item, earlier = _blocked_elsewhere_then_pending(pipeline)
    result = queue.approve(item["id"], BO, "fine")
    assert result["status"] == "approved"
    assert f"already in effect (by action {earlier} of case other-case)" in result["already_in_effect"]
    assert "no second effect" in result["note"]
    session = pipeline.store.session
    rows = session.exec(select(ContainmentRow)).all()
    assert len(rows) == 1 and rows[0].action_id == earlier and rows[0].active  # still the other case's effect
    mine = max(session.exec(select(ActionRow)).all(), key=lambda a: a.id)
    assert mine.case_id == item["case_id"] and '"already_active": true' in mine.result


def test_rejecting_it_says_the_effect_stays_in_place_in_the_answer_and_the_case_notes(pipeline):
    queue, item, earlier = _blocked_elsewhere_then_pending(pipeline)
    result = queue.reject(item["id"], BO, "not needed")
    assert (result["status"], result["action_status"]) == ("rejected", "rejected")
    assert f"already in effect (by action {earlier} of case other-case)" in result["already_in_effect"]
    assert "did not lift" in result["note"] and f"roll back action {earlier}" in result["note"]
    session = pipeline.store.session
    assert session.get(ContainmentRow, ("blocked_ip", "203.0.113.45")).active
    note = session.get(NoteRow, item["case_id"], populate_existing=True)
    assert any("did not lift" in q for q in json.loads(note.notes_json)["open_questions"])
    assert "did not lift" in note.markdown
    case = queue.case(item["case_id"])
    assert any("did not lift" in c["body"] for c in case["comments"])


def test_an_item_whose_effect_is_not_in_place_says_nothing_of_the_kind(pipeline):
    pipeline.services.policy.rules.append(PolicyRule(name="blocks-need-a-person", when='action == "block_ip"',
                                                     outcome=Outcome.NEEDS_APPROVAL, reason="test"))
    assert pipeline.process_line(BAD_IP)[0].status == "pending_approval"
    queue = ApprovalQueue(pipeline)
    item = queue.list()[0]
    assert item["already_in_effect"] is None
    result = queue.reject(item["id"], BO, "no")
    assert "already_in_effect" not in result and "note" not in result
