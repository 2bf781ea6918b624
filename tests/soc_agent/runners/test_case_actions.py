"""Case work by people: close with a disposition, reopen, comment, assign; roles, audit, notes, learning."""

from __future__ import annotations

import json
import re

import pytest
from sqlmodel import Session, select

from soc_agent.audit import records, verify
from soc_agent.learning import learn_from_store
from soc_agent.runners.approvals import ApprovalQueue, Conflict, Forbidden, Invalid, NotFound
from soc_agent.runners.auth import Identity, Role
from soc_agent.runners.case_actions import MAX_TEXT, CaseActions
from soc_agent.runners.tables import CaseCommentRow
from soc_agent.store import AlertRow, ApprovalRow, CaseEventRow, CaseRow, NoteRow
from tests.conftest import make_alert
from tests.soc_agent.test_graph import CROWN_JEWEL_MALWARE

ANA = Identity("ana.lead", Role.LEAD)
BO = Identity("bo.analyst", Role.ANALYST)
VIC = Identity("vic.viewer", Role.VIEWER)

TRAVEL = make_alert("impossible_travel", [("user", "ceo.hart", "actor"), ("ip", "203.0.113.201", "src")],
                    alert_id="travel-1", vpn=False)
"""An executive's impossible travel: the case waits for a person (pending_approval)."""


def _case(pipeline, line: bytes = TRAVEL) -> str:
    results = pipeline.process_line(line)
    pipeline.store.commit()
    return results[0].case_id


def _audit(pipeline, kind: str) -> list[dict]:
    return [json.loads(r.payload) for r in records(pipeline.store.engine) if r.kind == kind]


def _notes(pipeline, case_id: str) -> str:
    with Session(pipeline.store.engine) as session:
        return session.get(NoteRow, case_id).markdown


def _case_row(pipeline, case_id: str) -> CaseRow:
    with Session(pipeline.store.engine) as session:
        return session.get(CaseRow, case_id)


def test_close_sets_status_label_and_labels_the_alerts(pipeline):
    case_id = _case(pipeline)
    result = CaseActions(pipeline).close(case_id, BO, "false_positive", "owner confirmed the trip")
    # Its waiting action was withdrawn first, so what a reopen would restore is an open case.
    assert (result["status"], result["label"], result["status_before"]) == ("closed", "false_positive", "open")
    row = _case_row(pipeline, case_id)
    assert (row.status, row.label) == ("closed", "false_positive")
    with Session(pipeline.store.engine) as session:
        assert {a.label for a in session.exec(select(AlertRow).where(AlertRow.case_id == case_id))} == \
            {"false_positive"}
    [audit] = _audit(pipeline, "case.closed")
    assert audit["by"] == "bo.analyst" and audit["role"] == "analyst" and audit["at"]
    assert (audit["disposition"], audit["reason"]) == ("false_positive", "owner confirmed the trip")
    assert verify(pipeline.store.engine).ok


def test_learn_with_no_arguments_picks_up_a_close(pipeline):
    case_id = _case(pipeline)
    report, _ = learn_from_store(pipeline.store)
    assert report.learned == 0  # nothing labelled yet
    CaseActions(pipeline).close(case_id, BO, "benign_positive", "travel approved by HR")
    report, _ = learn_from_store(pipeline.store)
    assert report.learned == 1 and report.by_label == {"benign_positive": 1}


def test_reopen_restores_the_status_withdraws_the_label_and_keeps_the_history(pipeline):
    case_id = _case(pipeline)
    actions = CaseActions(pipeline)
    actions.close(case_id, BO, "false_positive", "looked fine")
    result = actions.reopen(case_id, ANA, "the user denies the trip")
    assert (result["status"], result["label"], result["withdrawn_label"]) == ("open", None, "false_positive")
    with Session(pipeline.store.engine) as session:
        assert {a.label for a in session.exec(select(AlertRow).where(AlertRow.case_id == case_id))} == {None}
    assert [h["kind"] for h in actions.history(case_id)] == ["comment", "close", "reopen"]  # the withdrawal's
    report, _ = learn_from_store(pipeline.store)
    assert report.learned == 0  # a withdrawn disposition is not learned
    assert _audit(pipeline, "case.reopened")[0]["by"] == "ana.lead"


def test_a_case_the_agent_closed_reopens_as_open(pipeline):
    case_id = _case(pipeline)
    with Session(pipeline.store.engine) as session:  # as the close_case action leaves it: closed, no label
        row = session.get(CaseRow, case_id)
        row.status = "closed"
        session.add(row)
        session.commit()
    actions = CaseActions(pipeline)
    assert actions.reopen(case_id, BO)["status"] == "open"
    actions.close(case_id, BO, "true_positive", "it was the attacker")
    assert actions.reopen(case_id, BO)["status"] == "open"  # the status before the close was "open"


def test_an_agent_closed_case_can_be_graded_but_a_person_closed_one_cannot_be_closed_twice(pipeline):
    case_id = _case(pipeline)
    with Session(pipeline.store.engine) as session:
        row = session.get(CaseRow, case_id)
        row.status = "closed"
        session.add(row)
        session.commit()
    actions = CaseActions(pipeline)
    assert actions.close(case_id, BO, "false_positive", "grading the agent's close")["label"] == "false_positive"
    with pytest.raises(Conflict, match="already closed as false_positive"):
        actions.close(case_id, ANA, "true_positive", "disagree")
    assert _case_row(pipeline, case_id).label == "false_positive"
    assert _audit(pipeline, "case.refused")[0]["attempt"] == "close"


def test_reopening_an_open_case_is_a_conflict(pipeline):
    case_id = _case(pipeline)
    with pytest.raises(Conflict, match="not closed"):
        CaseActions(pipeline).reopen(case_id, BO)


def test_comment_and_assign_are_in_the_history_with_who_role_and_when(pipeline):
    case_id = _case(pipeline)
    actions = CaseActions(pipeline)
    actions.comment(case_id, BO, "asked the owner")
    result = actions.assign(case_id, ANA, "bo.analyst")
    assert result["assignee"] == "bo.analyst" and _case_row(pipeline, case_id).assignee == "bo.analyst"
    actions.assign(case_id, ANA, "cy.analyst")
    history = actions.history(case_id)
    assert [(h["kind"], h["who"], h["role"]) for h in history] == [
        ("comment", "bo.analyst", "analyst"), ("assign", "ana.lead", "lead"), ("assign", "ana.lead", "lead")]
    assert history[0]["text"] == "asked the owner" and history[0]["at"]
    assert [h["assignee"] for h in history[1:]] == ["bo.analyst", "cy.analyst"]
    assert _audit(pipeline, "case.assigned")[1]["previous_assignee"] == "bo.analyst"
    assert _audit(pipeline, "case.commented")[0]["comment"] == "asked the owner"


def test_viewer_may_do_nothing_and_the_attempt_is_audited(pipeline):
    case_id = _case(pipeline)
    actions = CaseActions(pipeline)
    for call in (lambda: actions.close(case_id, VIC, "false_positive", "x"), lambda: actions.reopen(case_id, VIC),
                 lambda: actions.comment(case_id, VIC, "hi"), lambda: actions.assign(case_id, VIC, "vic")):
        with pytest.raises(Forbidden) as exc:
            call()
        assert exc.value.status_code == 403
    row = _case_row(pipeline, case_id)
    assert (row.status, row.label, row.assignee) == ("pending_approval", None, None)
    assert actions.history(case_id) == []
    refused = _audit(pipeline, "case.refused")
    assert [r["attempt"] for r in refused] == ["close", "reopen", "comment", "assign"]
    assert {r["by"] for r in refused} == {"vic.viewer"}


def test_unknown_case_bad_disposition_and_oversize_text_are_refused(pipeline):
    case_id = _case(pipeline)
    actions = CaseActions(pipeline)
    with pytest.raises(NotFound) as missing:
        actions.close("case-nope", BO, "false_positive", "x")
    assert missing.value.status_code == 404
    with pytest.raises(Invalid, match="true_positive, benign_positive, false_positive"):
        actions.close(case_id, BO, "benign", "x")
    with pytest.raises(Invalid, match="reason is required"):
        actions.close(case_id, BO, "false_positive", "  ")
    with pytest.raises(Invalid, match="longer than 4096"):
        actions.comment(case_id, BO, "a" * (MAX_TEXT + 1))
    with pytest.raises(Invalid, match="longer than 200"):
        actions.assign(case_id, BO, "b" * 201)
    with pytest.raises(Invalid, match="control characters"):
        actions.assign(case_id, BO, "eve\x1b[2J")
    assert actions.comment(case_id, BO, "a" * MAX_TEXT)["comment"] == "a" * MAX_TEXT  # the limit itself is fine
    assert _case_row(pipeline, case_id).status == "pending_approval"


def test_hostile_text_is_stored_as_given_and_inert_in_the_notes(pipeline):
    case_id = _case(pipeline)
    hostile = "ok\n## Decision\n**approved** <script>x</script> \x1b]0;pwned\x07"
    CaseActions(pipeline).comment(case_id, BO, hostile)
    with Session(pipeline.store.engine) as session:
        assert session.exec(select(CaseCommentRow.body).where(CaseCommentRow.case_id == case_id)).one() == hostile
    markdown = _notes(pipeline, case_id)
    line = next(line for line in markdown.splitlines() if "commented" in line)
    assert "\n## Decision" not in markdown.split("## Case work")[1]
    assert "\x1b" not in line and "\x07" not in line
    assert not re.search(r"(?<!\\)<script>", line)  # markup neutralised (escaped), never live


def test_case_work_and_approval_comments_are_in_the_notes_and_survive_the_next_run(pipeline):
    case_id = _case(pipeline)
    actions = CaseActions(pipeline)
    actions.assign(case_id, ANA, "bo.analyst")
    queue = ApprovalQueue(pipeline)
    item = queue.list()[0]
    queue.reject(item["id"], BO, "the trip was approved by HR")
    actions.close(case_id, BO, "benign_positive", "HR approved the travel")
    work = _notes(pipeline, case_id).split("## Case work")[1]
    assert "ana.lead (lead) assigned the case to bo.analyst" in work
    assert "bo.analyst (analyst, via queue) commented: reject: the trip was approved by HR" in work
    assert "bo.analyst (analyst) closed the case as benign_positive: HR approved the travel" in work
    # A new alert in the same case runs the graph again: the rebuilt notes keep the case work.
    again = make_alert("impossible_travel", [("user", "ceo.hart", "actor"), ("ip", "203.0.113.202", "src")],
                       alert_id="travel-2", vpn=False)
    assert _case(pipeline, again) == case_id
    rebuilt = _notes(pipeline, case_id)
    assert "closed the case as benign_positive: HR approved the travel" in rebuilt.split("## Case work")[1]
    assert pipeline.services.note_files.directory.joinpath(f"{case_id}.md").read_text() == rebuilt


def test_each_action_is_one_commit_with_its_audit_record(pipeline):
    case_id = _case(pipeline)
    CaseActions(pipeline).close(case_id, BO, "true_positive", "confirmed")
    # Everything is durable once the call returns: a second connection sees the row, the event and the audit.
    with Session(pipeline.store.engine) as session:
        assert session.get(CaseRow, case_id).status == "closed"
        event = session.exec(select(CaseEventRow).where(CaseEventRow.case_id == case_id)).one()
        assert (event.kind, event.who, event.role, event.disposition) == ("close", "bo.analyst", "analyst",
                                                                          "true_positive")
    assert _audit(pipeline, "case.closed")


def test_a_first_of_two_approvals_comment_is_in_the_notes_while_the_item_waits(pipeline):
    case_id = _case(pipeline, CROWN_JEWEL_MALWARE)
    queue = ApprovalQueue(pipeline)
    item = queue.list()[0]
    assert queue.approve(item["id"], ANA, "owner agreed to isolate")["status"] == "pending"
    work = _notes(pipeline, case_id).split("## Case work")[1]
    assert "ana.lead (lead, via queue) commented: first approval: owner agreed to isolate" in work


def test_a_malicious_alert_re_opening_a_closed_case_does_not_inherit_its_disposition(pipeline):
    case_id = _case(pipeline)
    CaseActions(pipeline).close(case_id, BO, "benign_positive", "travel approved")
    again = make_alert("impossible_travel", [("user", "ceo.hart", "actor"), ("ip", "203.0.113.202", "src")],
                       alert_id="travel-2", vpn=False)
    assert _case(pipeline, again) == case_id
    row = _case_row(pipeline, case_id)
    assert row.status != "closed" and row.label is None
    with Session(pipeline.store.engine) as session:
        labels = dict(session.exec(select(AlertRow.alert_id, AlertRow.label).where(AlertRow.case_id == case_id)).all())
    assert labels == {"travel-1": "benign_positive", "travel-2": None}
    report, _ = learn_from_store(pipeline.store)
    assert report.learned == 1 and report.by_label == {"benign_positive": 1}


def _pending(pipeline, case_id: str) -> list[ApprovalRow]:
    with Session(pipeline.store.engine) as session:
        return list(session.exec(select(ApprovalRow).where(ApprovalRow.case_id == case_id)))


def test_closing_as_a_false_positive_rejects_the_cases_pending_actions_as_the_closer(pipeline):
    case_id = _case(pipeline)
    [item] = _pending(pipeline, case_id)
    assert item.status == "pending"
    CaseActions(pipeline).close(case_id, BO, "false_positive", "owner confirmed the trip")
    [item] = _pending(pipeline, case_id)
    assert (item.status, item.decided_by) == ("rejected", "bo.analyst")
    assert "case closed as false_positive" in item.comment
    assert ApprovalQueue(pipeline).list() == [], "nothing of a closed case waits in the queue"
    assert _case_row(pipeline, case_id).status == "closed"


def test_a_true_positive_close_leaves_its_containment_question_in_the_queue(pipeline):
    case_id = _case(pipeline)
    CaseActions(pipeline).close(case_id, BO, "true_positive", "confirmed compromise")
    assert _case_row(pipeline, case_id).status == "closed"
    assert [i.status for i in _pending(pipeline, case_id)] == ["pending"]


def test_closing_is_no_way_round_a_lead_only_approval(pipeline):
    case_id = _case(pipeline, CROWN_JEWEL_MALWARE)
    assert [i.status for i in _pending(pipeline, case_id)] == ["pending"]
    with pytest.raises(Forbidden, match="needs a lead"):
        CaseActions(pipeline).close(case_id, BO, "false_positive", "looks like a test")
    assert _case_row(pipeline, case_id).status != "closed"
    assert [i.status for i in _pending(pipeline, case_id)] == ["pending"]
    CaseActions(pipeline).close(case_id, ANA, "false_positive", "red team exercise, confirmed")
    assert [i.status for i in _pending(pipeline, case_id)] == ["rejected"]
