"""act_on_decision, record_only and verify_effect: execute exactly once, record what did not run, check it took."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import select

from soc_agent.responders.executor import describe_status
from soc_agent.store import ActionRow, ApprovalRow, ContainmentRow
from soc_agent.types import Outcome, RunMode
from tests.conftest import make_alert
from tests.soc_agent.nodes.node_kit import (
    UPSTREAM,
    audited,
    call,
    run_through,
    stored_case,
)

BAD_IP = "203.0.113.45"
C2 = make_alert("connection_to_known_bad_ip", [("ip", BAD_IP, "dst"), ("host", "wks-eng-01.corp.example", "src")],
                alert_id="c2-1")
CROWN_JEWEL = make_alert("malware_detected", [
    ("host", "dc02.corp.example", "dst"),
    ("file_hash", "c3afd733d28951f6fbffb8b0ddb87d3179c045022929dc79bd60da518f5d5524", "file")],
    alert_id="dc-1", severity="critical")
EXEC_TRAVEL = make_alert("impossible_travel", [("user", "ceo.hart", "actor"), ("ip", "203.0.113.201", "src")],
                         alert_id="it-1", vpn=False, distance_km=6841, hours_between=1.9)


def _decided(svc, line, case_id="case-1"):
    return run_through(svc, stored_case(svc, line, case_id=case_id), *UPSTREAM)


def _actions(svc) -> list[ActionRow]:
    svc.store.session.flush()
    return list(svc.store.session.exec(select(ActionRow).order_by(ActionRow.id)))


def _block(svc) -> ContainmentRow | None:
    svc.store.session.flush()
    return svc.store.session.get(ContainmentRow, ("blocked_ip", BAD_IP))


def test_an_allowed_block_is_executed_with_its_ttl(svc):
    state = _decided(svc, C2, "case-c2")
    update = call("act", state, svc)
    assert update["action_status"] == "executed"
    [row] = _actions(svc)
    assert row.id == update["action_id"] and row.status == "done" and row.case_id == "case-c2"
    assert row.expires_at == row.completed_at + timedelta(seconds=86400)
    block = _block(svc)
    assert block.active and block.action_id == row.id
    assert update["trace"] == [f"act: block_ip executed (action {row.id})"]


def test_a_rerun_with_the_same_action_executes_nothing_twice(svc):
    state = _decided(svc, C2, "case-c2")
    first = call("act", state, svc)
    again = call("act", state, svc)
    assert again["action_id"] == first["action_id"] and again["action_status"] == "executed"
    assert len(_actions(svc)) == 1
    assert len(audited(svc, "case-c2", "action.intent")) == 1
    assert len(audited(svc, "case-c2", "action.result")) == 1


def test_a_block_already_in_place_is_recorded_as_owning_nothing(svc):
    # Another case blocked the address for a week already: this run's day-long block changes nothing.
    week = _decided(svc, C2, "case-a")["decision"].action.model_copy(update={"params": {"ttl_seconds": 7 * 86400}})
    earlier = svc.executor.execute(week, "case-a", run=1)
    update = call("act", _decided(svc, C2, "case-b"), svc)
    assert update["action_status"] == "executed" and update["action_id"] != earlier.id
    row = svc.store.session.get(ActionRow, update["action_id"])
    result = json.loads(row.result)
    assert result["owns"] is False and result["held_by"] == earlier.id
    assert describe_status(row) == f"done (already in effect: action {earlier.id}; owns nothing)"
    assert _block(svc).action_id == earlier.id and _block(svc).expires_at == earlier.expires_at


def _paused(svc, line, case_id="case-1"):
    """A run the guard sent to a person, committed as the pipeline commits a paused run before anyone answers."""
    state = _decided(svc, line, case_id)
    assert state["decision"].outcome is Outcome.NEEDS_APPROVAL
    svc.store.commit()
    return state


def _approved(state, *approvers, **extra):
    return {**state, "approval": {"approved": True, "by": approvers[0], "approvers": list(approvers),
                                  "comment": "checked with the owner", **extra}}


def test_an_approved_crown_jewel_isolation_runs_with_two_approvers_and_settles_the_queue_item(svc):
    state = _paused(svc, CROWN_JEWEL, "case-dc")
    update = call("act", _approved(state, "lead.ana", "lead.di"), svc)
    assert update["action_status"] == "executed"
    assert update["decision"].outcome is Outcome.ALLOW
    assert "approved by lead.ana and lead.di" in update["decision"].reason_lines
    row = svc.store.session.get(ActionRow, update["action_id"])
    assert row.name == "isolate_host" and row.approved_by == "lead.ana"
    assert svc.store.session.get(ContainmentRow, ("isolated_host", "dc02.corp.example")).active
    item = svc.store.session.exec(select(ApprovalRow)).one()
    assert (item.status, item.decided_by, item.comment) == ("approved", "lead.ana", "checked with the owner")


def test_the_act_node_rechecks_the_guard_one_approver_never_lifts_a_crown_jewel(svc):
    update = call("act", _approved(_paused(svc, CROWN_JEWEL), "lead.ana"), svc)
    assert update["action_status"] == "denied"
    assert any("two-person rule" in r for r in update["decision"].reason_lines)
    assert [a.status for a in _actions(svc)] == ["denied"]
    assert svc.store.session.get(ContainmentRow, ("isolated_host", "dc02.corp.example")) is None


def test_an_approval_cannot_outlast_the_kill_switch(svc):
    state = _paused(svc, CROWN_JEWEL)
    svc.policy.kill_switch = True  # engaged while the item waited
    update = call("act", _approved(state, "lead.ana", "lead.di"), svc)
    assert update["action_status"] == "denied"
    assert "deny: kill switch engaged: nothing above observe runs" in update["decision"].reason_lines
    assert svc.store.session.get(ContainmentRow, ("isolated_host", "dc02.corp.example")) is None


def test_an_approvers_replacement_runs_only_if_it_is_on_the_menu(svc):
    state = _paused(svc, EXEC_TRAVEL, "case-exec")
    assert state["decision"].action.name == "revoke_sessions" and "force_mfa" in state["menu"]
    off_menu = {"name": "disable_account", "tier": "observe", "capability": "idp.disable_user",
                "target": {"kind": "user", "value": "ceo.hart"}}
    refused = call("act", _approved(state, "lead.ana", action=off_menu), svc)
    assert refused["action_status"] == "denied"
    assert refused["trace"] == ["act: replacement action refused (not on the menu)"]
    assert svc.store.session.get(ContainmentRow, ("disabled_account", "ceo.hart")) is None

    on_menu = {"name": "force_mfa", "tier": "observe", "capability": "idp.force_mfa",
               "target": {"kind": "user", "value": "ceo.hart"}}
    done = call("act", _approved(state, "lead.ana", action=on_menu), svc)
    assert done["action_status"] == "executed"
    assert done["decision"].action.tier == "contain_soft", "the catalog, not the approver, says what it is"
    assert svc.store.session.get(ContainmentRow, ("forced_mfa", "ceo.hart")).active
    assert svc.store.session.get(ContainmentRow, ("revoked_sessions", "ceo.hart")) is None


def test_shadow_mode_records_what_would_have_run_and_runs_nothing(svc):
    svc.settings = svc.settings.model_copy(update={"mode": RunMode.SHADOW})
    update = call("record_only", _decided(svc, C2, "case-c2"), svc)
    asks = call("record_only", _decided(svc, CROWN_JEWEL, "case-dc"), svc)
    assert (update["action_status"], asks["action_status"]) == ("recorded", "recorded (would need approval)")
    assert [(a.name, a.status) for a in _actions(svc)] == [("block_ip", "recorded"),
                                                          ("isolate_host", "recorded (would need approval)")]
    assert svc.store.session.exec(select(ContainmentRow)).all() == []


def test_a_denial_is_recorded_with_the_guards_reasons(svc):
    svc.policy.kill_switch = True
    state = _decided(svc, C2)
    assert state["decision"].outcome is Outcome.DENY
    update = call("record_only", state, svc)
    assert update["action_status"] == "denied"
    [row] = _actions(svc)
    assert json.loads(row.result)["why"] == "; ".join(state["decision"].reason_lines)
    assert _block(svc) is None


def test_a_rejection_is_recorded_and_settles_the_queue_item(svc):
    state = _paused(svc, CROWN_JEWEL)
    rejected = {**state, "approval": {"approved": False, "by": "analyst.bo", "comment": "known admin tool"}}
    update = call("record_only", rejected, svc)
    assert update["action_status"] == "rejected"
    assert json.loads(_actions(svc)[0].result)["why"] == "rejected by analyst.bo: known admin tool"
    item = svc.store.session.exec(select(ApprovalRow)).one()
    assert (item.status, item.decided_by) == ("rejected", "analyst.bo")
    assert svc.store.session.exec(select(ContainmentRow)).all() == []


def test_verify_checks_the_executed_effect_is_in_place(svc):
    state = run_through(svc, _decided(svc, C2, "case-c2"), "act")
    update = call("verify", state, svc)
    assert update == {"verified": True, "trace": ["verify: in effect, expires in 86400s"]}
    [entry] = audited(svc, "case-c2", "node.verify")
    assert entry["in_effect"] is True and entry["action_id"] == state["action_id"]

    svc.executor.rollback(state["action_id"], by="analyst.bo")  # lifted before the check
    assert call("verify", state, svc)["verified"] is False


def test_verify_has_nothing_to_check_when_nothing_ran(svc):
    svc.settings = svc.settings.model_copy(update={"mode": RunMode.SHADOW})
    state = run_through(svc, _decided(svc, C2), "record_only")
    assert call("verify", state, svc) == {"verified": None, "trace": ["verify: nothing executed"]}
