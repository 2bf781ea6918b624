"""The graph with its SQLite checkpointer: interrupt, then resume in another process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from sqlmodel import select

from soc_agent.audit import verify
from soc_agent.graph import build_graph
from soc_agent.store import ActionRow, ApprovalRow, CaseRow, ContainmentRow
from tests.conftest import make_alert

CROWN_JEWEL_MALWARE = make_alert(
    "malware_detected",
    [("host", "dc02.corp.example", "dst"),
     ("file_hash", "c3afd733d28951f6fbffb8b0ddb87d3179c045022929dc79bd60da518f5d5524", "file")],
    alert_id="dc-1", severity="critical",
)


def test_graph_has_every_node_of_the_flow():
    nodes = set(build_graph().get_graph().nodes)
    assert {"ingest", "guard_replay", "enrich", "load_case", "assess", "reason", "plan", "guard", "act",
            "await_approval", "record_only", "verify", "write_notes"} <= nodes


def _resume_in_new_process(settings, approved: bool, by: str, approvers: tuple[str, ...] = ()) -> str:
    script = textwrap.dedent(f"""
        from pathlib import Path
        from soc_agent.config import Settings
        from soc_agent.pipeline import Pipeline
        p = Pipeline(Settings(workdir=Path({str(settings.workdir)!r})))
        item = p.pending_approvals()[0]
        state = p.resume(item.thread_id, approved={approved}, by={by!r}, comment="checked with the owner",
                         approvers={approvers!r})
        print(state["action_status"])
        p.close()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_paused_run_is_approved_and_resumed_in_another_process(settings):
    from soc_agent.pipeline import Pipeline

    first = Pipeline(settings)
    result = first.process_line(CROWN_JEWEL_MALWARE)[0]
    assert result.status == "pending_approval"
    first.close()

    # A crown jewel: the two-person rule wants two distinct approvers.
    assert _resume_in_new_process(settings, approved=True, by="lead.ana",
                                  approvers=("lead.ana", "lead.di")) == "executed"

    check = Pipeline(settings)
    session = check.store.session
    approval = session.exec(select(ApprovalRow)).one()
    assert approval.status == "approved" and approval.decided_by == "lead.ana"
    action = session.exec(select(ActionRow).where(ActionRow.status == "done")).one()
    assert action.name == "isolate_host" and action.approved_by == "lead.ana"
    assert session.get(ContainmentRow, ("isolated_host", "dc02.corp.example")).active
    assert session.get(CaseRow, result.case_id).status == "contained"
    assert verify(check.store.engine).ok
    check.close()


def test_rejected_run_records_the_rejection_and_acts_on_nothing(settings):
    from soc_agent.pipeline import Pipeline

    first = Pipeline(settings)
    first.process_line(CROWN_JEWEL_MALWARE)
    first.close()

    assert _resume_in_new_process(settings, approved=False, by="analyst.bo") == "rejected"

    check = Pipeline(settings)
    session = check.store.session
    assert session.exec(select(ApprovalRow)).one().status == "rejected"
    assert session.exec(select(ContainmentRow)).all() == []
    assert [a.status for a in session.exec(select(ActionRow))] == ["rejected"]
    check.close()


def test_an_approval_cannot_unlock_what_the_guard_denies(settings):
    """The act node re-checks the guard: an edit to a denied target does not run."""
    from soc_agent.pipeline import Pipeline

    p = Pipeline(settings)
    try:
        p.process_line(CROWN_JEWEL_MALWARE)
        item = p.pending_approvals()[0]
        p.services.policy.kill_switch = True  # engaged while the item waited
        state = p.resume(item.thread_id, approved=True, by="lead.ana")
        assert state["action_status"] == "denied"
        assert any("kill switch" in r for r in state["decision"].reason_lines)
        assert p.store.session.exec(select(ContainmentRow)).all() == []
    finally:
        p.close()


EXEC_TRAVEL = make_alert("impossible_travel", [("user", "ceo.hart", "actor"), ("ip", "203.0.113.201", "src")],
                         alert_id="it-1", vpn=False, distance_km=6841, hours_between=1.9)


def test_an_approver_can_replace_the_action_with_another_on_the_menu(settings):
    from langgraph.types import Command

    from soc_agent.pipeline import Pipeline

    p = Pipeline(settings)
    try:
        assert p.process_line(EXEC_TRAVEL)[0].status == "pending_approval"
        item = p.pending_approvals()[0]
        config = {"configurable": {"thread_id": item.thread_id}}
        assert "force_mfa" in p.graph.get_state(config).values["menu"]
        replacement = {"name": "force_mfa", "tier": "contain_soft", "capability": "idp.force_mfa",
                       "target": {"kind": "user", "value": "ceo.hart"}}
        state = p.graph.invoke(Command(resume={"approved": True, "by": "lead.ana", "action": replacement}),
                               config, context=p.services)
        assert state["action_status"] == "executed"
        assert p.store.session.get(ContainmentRow, ("forced_mfa", "ceo.hart")).active
        assert p.store.session.get(ContainmentRow, ("revoked_sessions", "ceo.hart")) is None
    finally:
        p.close()


def test_a_replacement_action_off_the_menu_is_refused(settings):
    from langgraph.types import Command

    from soc_agent.pipeline import Pipeline

    p = Pipeline(settings)
    try:
        p.process_line(EXEC_TRAVEL)
        item = p.pending_approvals()[0]
        replacement = {"name": "disable_account", "tier": "observe", "capability": "idp.disable_user",
                       "target": {"kind": "user", "value": "ceo.hart"}}
        state = p.graph.invoke(Command(resume={"approved": True, "by": "lead.ana", "action": replacement}),
                               {"configurable": {"thread_id": item.thread_id}}, context=p.services)
        assert state["action_status"] == "denied"
        assert p.store.session.exec(select(ContainmentRow)).all() == []
    finally:
        p.close()
