"""guard_action: allow, needs_approval or deny, with reasons; every decision recorded, approvals queued."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import select

from soc_agent.actions import action_spec
from soc_agent.routing import route_after_guard
from soc_agent.store import ApprovalRow, DecisionRow, NoteRow
from soc_agent.types import (
    Assessment,
    Entity,
    EntityKind,
    Outcome,
    ProposedAction,
    RunMode,
    Verdict,
    utcnow,
)
from tests.conftest import make_alert
from tests.soc_agent.nodes.node_kit import (
    UPSTREAM,
    audited,
    call,
    run_through,
    stored_case,
)

C2 = make_alert("connection_to_known_bad_ip", [("ip", "203.0.113.45", "dst"), ("host", "wks-eng-01.corp.example", "src")],
                alert_id="c2-1")
CROWN_JEWEL = make_alert("malware_detected", [
    ("host", "dc02.corp.example", "dst"),
    ("file_hash", "c3afd733d28951f6fbffb8b0ddb87d3179c045022929dc79bd60da518f5d5524", "file")],
    alert_id="dc-1", severity="critical")
EXEC_TRAVEL = make_alert("impossible_travel", [("user", "ceo.hart", "actor"), ("ip", "203.0.113.201", "src")],
                         alert_id="it-1", vpn=False, distance_km=6841, hours_between=1.9)
SCAN = make_alert("port_scan", [("ip", "10.0.5.20", "src"), ("host", "backup01.corp.example", "dst")],
                  alert_id="scan-1", severity="medium")
UNKNOWN = make_alert("printer_toner_low", [("host", "wks-eng-02.corp.example", "dst")], alert_id="u-1",
                     severity="informational")
BEFORE = UPSTREAM[:UPSTREAM.index("guard")]


def _ready(svc, line, case_id="case-1"):
    return run_through(svc, stored_case(svc, line, case_id=case_id), *BEFORE)


def _decisions(svc) -> list[DecisionRow]:
    svc.store.session.flush()
    return list(svc.store.session.exec(select(DecisionRow)))


def _approvals(svc) -> list[ApprovalRow]:
    svc.store.session.flush()
    return list(svc.store.session.exec(select(ApprovalRow)))


def test_a_confident_block_of_an_external_attacker_is_allowed_recorded_and_counted(svc):
    state = _ready(svc, C2, "case-c2")
    update = call("guard", state, svc)
    decision = update["decision"]
    assert decision.outcome is Outcome.ALLOW and decision.mode is RunMode.ENFORCE and decision.executes
    assert route_after_guard({**state, **update}) == "act"
    [row] = _decisions(svc)
    assert (row.case_id, row.run, row.action, row.target, row.outcome, row.mode) == (
        "case-c2", 1, "block_ip", "ip:203.0.113.45", "allow", "enforce")
    assert json.loads(row.reasons) == decision.reason_lines
    assert len(svc.block_times) == 1, "counted for the block-rate limit when decided"
    assert _approvals(svc) == []
    [entry] = audited(svc, "case-c2", "decision")
    assert entry["outcome"] == "allow" and entry["action"] == "block_ip"


def test_a_block_of_a_private_address_is_denied_with_the_reason(svc):
    state = _ready(svc, C2)
    private = state["proposed"].model_copy(update={"target": Entity(kind=EntityKind.IP, value="10.20.30.40")})
    update = call("guard", {**state, "proposed": private}, svc)
    decision = update["decision"]
    assert decision.outcome is Outcome.DENY and not decision.executes
    assert "deny: never block: 10.20.30.40 is a private address" in decision.reason_lines
    assert route_after_guard({**state, **update}) == "record_only"
    assert len(svc.block_times) == 0, "a denied block is not counted"


def test_containment_of_a_crown_jewel_needs_approval_and_is_queued_with_its_notes(svc):
    state = _ready(svc, CROWN_JEWEL, "case-dc")
    update = call("guard", state, svc)
    decision = update["decision"]
    assert decision.outcome is Outcome.NEEDS_APPROVAL and decision.action.name == "isolate_host"
    assert "needs_approval: crown-jewel asset (tier 0) involved" in decision.reason_lines
    assert route_after_guard({**state, **update}) == "await_approval"
    [item] = _approvals(svc)
    assert (item.case_id, item.thread_id, item.action, item.status) == ("case-dc", "case-dc:1", "isolate_host",
                                                                        "pending")
    assert json.loads(item.reasons) == decision.reason_lines
    note = svc.store.session.get(NoteRow, "case-dc")
    assert note is not None and "isolate_host" in note.markdown, "the approver reads the notes while it waits"


def test_containment_touching_an_executive_needs_approval(svc):
    update = call("guard", _ready(svc, EXEC_TRAVEL), svc)
    decision = update["decision"]
    assert decision.action.target.key == "user:ceo.hart"
    assert decision.outcome is Outcome.NEEDS_APPROVAL
    assert "needs_approval: executive identity involved" in decision.reason_lines


def _close() -> ProposedAction:
    spec = action_spec("close_case")
    return ProposedAction(name=spec.name, tier=spec.tier, capability=spec.capability, rollback=spec.rollback)


def test_closing_needs_positive_benign_evidence_absence_of_evidence_never_closes(svc):
    # A non-malicious verdict with nothing behind it (e.g. a model's word): the guard sends it to a person.
    state = _ready(svc, UNKNOWN, "case-u")
    unsupported = Assessment(verdict=Verdict.FALSE_POSITIVE, confidence=0.99, reasoner="scripted")
    decision = call("guard", {**state, "assessment": unsupported, "proposed": _close()}, svc)["decision"]
    assert decision.outcome is Outcome.NEEDS_APPROVAL
    assert ("needs_approval: no positive evidence of benign: absence of evidence never closes a case"
            in decision.reason_lines)

    allowlisted = _ready(svc, SCAN, "case-scan")
    assert allowlisted["proposed"].name == "close_case"
    assert call("guard", allowlisted, svc)["decision"].outcome is Outcome.ALLOW, "an allowlisted scanner closes"


def test_nothing_proposed_means_nothing_decided_or_recorded(svc):
    state = _ready(svc, C2)
    update = call("guard", {**state, "proposed": None}, svc)
    assert update == {"decision": None, "trace": ["guard: nothing to decide"]}
    assert route_after_guard({**state, **update}) == "write_notes"
    assert _decisions(svc) == []


def test_shadow_mode_decides_the_same_but_executes_and_queues_nothing(svc):
    svc.settings = svc.settings.model_copy(update={"mode": RunMode.SHADOW})
    allowed = call("guard", _ready(svc, C2, "case-c2"), svc)["decision"]
    assert allowed.outcome is Outcome.ALLOW and allowed.mode is RunMode.SHADOW and not allowed.executes
    asks = call("guard", _ready(svc, CROWN_JEWEL, "case-dc"), svc)["decision"]
    assert asks.outcome is Outcome.NEEDS_APPROVAL and asks.mode is RunMode.SHADOW
    assert _approvals(svc) == [], "shadow mode asks nobody"
    assert [r.mode for r in _decisions(svc)] == ["shadow", "shadow"]


def test_a_stale_alert_is_judged_but_never_acted_on(svc):
    old = make_alert("connection_to_known_bad_ip", [("ip", "203.0.113.45", "dst")], alert_id="old-1",
                     minutes_ago=400 * 24 * 60)
    decision = call("guard", _ready(svc, old), svc)["decision"]
    assert decision.mode is RunMode.SHADOW and not decision.executes
    assert "stale alert: not acted on (older than 365 days)" in decision.reason_lines


def test_a_fresh_install_asks_a_person_before_any_containment(supervised_svc):
    decision = call("guard", _ready(supervised_svc, C2), supervised_svc)["decision"]
    assert decision.action.name == "block_ip" and decision.outcome is Outcome.NEEDS_APPROVAL
    assert any("no autonomy file" in r for r in decision.reason_lines)


def test_the_block_rate_limit_sends_a_burst_of_blocks_to_a_person(svc):
    max_blocks = svc.policy.block.max_blocks
    svc.block_times.extend([utcnow() - timedelta(seconds=1)] * max_blocks)
    decision = call("guard", _ready(svc, C2), svc)["decision"]
    assert decision.outcome is Outcome.NEEDS_APPROVAL
    assert any(r.startswith(f"needs_approval: block rate limit: {max_blocks} blocks") for r in decision.reason_lines)
    svc.block_times.clear()
    svc.block_times.extend([utcnow() - timedelta(seconds=svc.policy.block.rate_window_s + 5)] * max_blocks)
    assert call("guard", _ready(svc, C2, "case-2"), svc)["decision"].outcome is Outcome.ALLOW, "old blocks expire"
