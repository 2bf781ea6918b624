"""Effects belong to the action that made them: a no-op owns nothing, a rollback lifts only its own hold."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from soc_agent.audit import AuditLog
from soc_agent.responders import ActionExecutor, LocalResponder
from soc_agent.responders.executor import describe_status
from soc_agent.store import ActionRow, CaseRow, ContainmentRow, NoteRow, Store
from soc_agent.store.tables import ContainmentHoldRow
from soc_agent.types import Entity, EntityKind, ProposedAction, Tier, to_db_time, utcnow

X = "203.0.113.77"
DAY = 86400


@pytest.fixture
def kit(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    executor = ActionExecutor(store, AuditLog(store.engine), [LocalResponder(store)])
    yield store, executor
    store.close()


def _block(store: Store, executor: ActionExecutor, case_id: str, ttl: int, ip: str = X, now=None) -> ActionRow:
    now = to_db_time(now or utcnow())
    if store.session.get(CaseRow, case_id) is None:
        store.session.add(CaseRow(id=case_id, opened_at=now, updated_at=now, status="open"))
    action = ProposedAction(name="block_ip", tier=Tier.CONTAIN_SOFT, capability="firewall.block",
                            target=Entity(kind=EntityKind.IP, value=ip), params={"ttl_seconds": ttl},
                            rollback="unblock_ip")
    row = executor.execute(action, case_id, run=1, now=now)
    assert row.status == "done"
    store.session.get(CaseRow, case_id).status = "contained"
    store.commit()
    return row


def _block_row(store: Store) -> ContainmentRow:
    row = store.session.get(ContainmentRow, ("blocked_ip", X))
    store.session.refresh(row)
    return row


def test_a_no_op_block_owns_nothing_and_its_rollback_leaves_the_other_cases_block(kit):
    store, executor = kit
    a = _block(store, executor, "case-a", DAY)
    b = _block(store, executor, "case-b", 600)  # X is already blocked for 24 h: nothing to do
    assert json.loads(b.result)["owns"] is False and json.loads(b.result)["held_by"] == a.id
    assert describe_status(b) == f"done (already in effect: action {a.id}; owns nothing)"
    assert describe_status(a) == "done"

    executor.rollback(b.id, by="alice")
    block = _block_row(store)
    assert block.active and block.action_id == a.id, "case A's block is still in place"
    assert block.expires_at == a.expires_at, "with case A's 24 h TTL"
    assert json.loads(b.result)["rollback"]["owned"] is False
    assert describe_status(b) == f"rolled_back (already in effect: action {a.id}; owns nothing)"
    assert store.session.get(ActionRow, a.id).status == "done"

    executor.rollback(a.id, by="alice")
    assert not _block_row(store).active, "the last (only) holder's rollback lifts it"


def test_two_holders_keep_the_block_until_both_are_gone_and_the_longer_ttl_wins(kit):
    store, executor = kit
    short = _block(store, executor, "case-a", 600)
    long = _block(store, executor, "case-b", DAY)  # extends the block: a second holder
    assert json.loads(long.result)["owns"] is True
    holds = store.session.exec(select(ContainmentHoldRow).where(ContainmentHoldRow.active == True)).all()
    assert sorted(h.action_id for h in holds) == [short.id, long.id]
    assert _block_row(store).expires_at == long.expires_at, "the longer TTL wins while both hold"

    executor.rollback(long.id)
    block = _block_row(store)
    assert block.active and block.expires_at == short.expires_at, "back to the remaining holder's TTL"
    executor.rollback(short.id)
    assert not _block_row(store).active

    # The other order: the first holder goes first, the block stays for the second.
    first = _block(store, executor, "case-c", 600)
    second = _block(store, executor, "case-d", DAY)
    executor.rollback(first.id)
    assert _block_row(store).active and _block_row(store).expires_at == second.expires_at
    executor.rollback(second.id)
    assert not _block_row(store).active


def test_expiry_lifts_only_what_the_expiring_action_holds(kit):
    store, executor = kit
    start = to_db_time(utcnow())
    short = _block(store, executor, "case-a", 600, now=start)
    long = _block(store, executor, "case-b", DAY, now=start)
    assert executor.expire(start + timedelta(seconds=601)) == 1
    assert store.session.get(ActionRow, short.id).status == "expired"
    assert store.session.get(ActionRow, long.id).status == "done"
    assert _block_row(store).active, "still held by the 24 h block"
    executor.expire(start + timedelta(seconds=DAY + 1))
    assert not _block_row(store).active and store.session.get(ActionRow, long.id).status == "expired"


def test_a_rollback_updates_the_status_and_notes_of_every_case_it_touched(kit):
    store, executor = kit
    a = _block(store, executor, "case-a", DAY)
    b = _block(store, executor, "case-b", 600)

    executor.rollback(b.id, by="alice")
    assert store.session.get(CaseRow, "case-b").status == "open", "case B's own containment is gone"
    assert store.session.get(CaseRow, "case-a").status == "contained"
    note = store.session.get(NoteRow, "case-b")
    store.session.refresh(note)
    assert f"action {b.id}" in note.markdown and "rolled back by alice" in note.markdown
    assert "owned nothing" in note.markdown and f"held by action {a.id}" in note.markdown
    assert store.session.get(NoteRow, "case-a") is None, "case A was not touched"

    # Case C relied on case A's block (a no-op of its own): lifting it re-opens case C too.
    c = _block(store, executor, "case-c", 600)
    executor.rollback(a.id, by="bob")
    for case_id in ("case-a", "case-c"):
        assert store.session.get(CaseRow, case_id).status == "open"
        note = store.session.get(NoteRow, case_id)
        store.session.refresh(note)
        assert "rolled back by bob" in note.markdown and f"action {a.id}" in note.markdown
    assert f"action {c.id} of this case relied on" in note.markdown
    lines = json.loads(store.session.get(NoteRow, "case-a").notes_json)["rollbacks"]
    assert len(lines) == 1 and "its effect was lifted" in lines[0] and "UTC" in lines[0]


def test_the_effect_gets_the_actions_ttl(kit):
    store, executor = kit
    row = _block(store, executor, "case-a", 600)
    block = _block_row(store)
    assert block.expires_at == row.completed_at + timedelta(seconds=600) == row.expires_at


def test_a_block_made_before_holds_existed_is_owned_by_its_action(kit):
    store, _ = kit
    now = to_db_time(utcnow())
    store.session.add(CaseRow(id="old", opened_at=now, updated_at=now, status="contained"))
    store.session.add(ContainmentRow(effect="blocked_ip", target=X, action_id=41, created_at=now,
                                     expires_at=now + timedelta(seconds=DAY), detail='{"case_id": "old"}'))
    store.commit()
    fresh = ActionExecutor(store, AuditLog(store.engine), [LocalResponder(store)])
    b = _block(store, fresh, "case-b", 600)
    assert json.loads(b.result)["held_by"] == 41
    fresh.rollback(b.id)
    assert _block_row(store).active


def test_an_approvers_edited_ttl_is_the_ttl_the_block_gets(pipeline):
    from soc_agent.policy import PolicyRule
    from soc_agent.runners.approvals import ApprovalQueue
    from soc_agent.runners.auth import Identity, Role
    from soc_agent.types import Outcome
    from tests.conftest import make_alert

    pipeline.services.policy.rules.append(PolicyRule(name="blocks-need-a-person", when='action == "block_ip"',
                                                     outcome=Outcome.NEEDS_APPROVAL, reason="test"))
    alert = make_alert("connection_to_known_bad_ip", [("ip", "203.0.113.45", "dst"), ("host", "wks-17", "src")],
                       alert_id="c2-1")
    assert pipeline.process_line(alert)[0].status == "pending_approval"
    queue = ApprovalQueue(pipeline)
    item = queue.list()[0]
    assert queue.show(item["id"])["params"]["ttl_seconds"] == DAY
    result = queue.edit(item["id"], Identity("bo.analyst", Role.ANALYST), "ten minutes", params={"ttl_seconds": 600})
    assert result["action_status"] == "executed"
    session = pipeline.store.session
    action = session.exec(select(ActionRow).where(ActionRow.name == "block_ip")).one()
    block = session.get(ContainmentRow, ("blocked_ip", "203.0.113.45"))
    assert block.active and action.expires_at == action.completed_at + timedelta(seconds=600)
    assert block.expires_at == action.expires_at, "the block lapses when the edited TTL says"
    hold = session.exec(select(ContainmentHoldRow).where(ContainmentHoldRow.action_id == action.id)).one()
    assert hold.expires_at == action.expires_at
