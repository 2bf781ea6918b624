"""write_notes: what the case notes say became of the action."""

from __future__ import annotations

import json

from sqlmodel import select

from soc_agent.store import ActionRow, CaseRow, NoteRow
from soc_agent.types import Entity, EntityKind, ProposedAction, Tier, to_db_time, utcnow
from tests.conftest import make_alert

BAD = "203.0.113.45"


def test_a_no_op_action_is_noted_as_already_in_effect_and_owning_nothing_never_as_executed(pipeline):
    # Another case blocked the address for a week already.
    session = pipeline.store.session
    now = to_db_time(utcnow())
    session.add(CaseRow(id="case-earlier", opened_at=now, updated_at=now, status="contained"))
    earlier = pipeline.services.executor.execute(
        ProposedAction(name="block_ip", tier=Tier.CONTAIN_SOFT, capability="firewall.block",
                       target=Entity(kind=EntityKind.IP, value=BAD), params={"ttl_seconds": 7 * 86400},
                       rollback="unblock_ip"), "case-earlier", run=1)
    pipeline.store.commit()

    alert = make_alert("connection_to_known_bad_ip", [("ip", BAD, "dst"), ("host", "wks-17", "src")],
                       alert_id="c2-1")
    [result] = pipeline.process_line(alert)
    action = session.exec(select(ActionRow).where(ActionRow.case_id == result.case_id)).one()
    assert action.name == "block_ip" and action.status == "done"
    assert json.loads(action.result)["owns"] is False, "the block was already in place: a no-op"

    note = session.get(NoteRow, result.case_id)
    session.refresh(note)
    [noted] = json.loads(note.notes_json)["actions"]
    expected = f"already in effect (by action {earlier.id}); this action owns nothing"
    assert noted["status"] == expected
    assert expected in note.markdown and "executed" not in note.markdown
    assert f"actions rollback {action.id}" not in note.markdown, "nothing of its own to roll back"
