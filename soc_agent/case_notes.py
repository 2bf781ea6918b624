"""A case's notes in the store: written for each run, and amended by people's work and rollbacks.

``persist_notes`` writes the notes of a run so far (the ``write_notes`` node,
and the guard when a run pauses for a person); ``refresh_case_work`` and
``note_rollback`` amend the stored notes when a person works the case or an
action is rolled back. Every write happens in the store's transaction; the
caller commits.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from soc_agent.case_history import case_history, history_line
from soc_agent.notes import CaseNotes, NoteAction, NoteEvidence, TimelineEntry, inert, render_markdown
from soc_agent.state import TriageState, traced_nodes
from soc_agent.store import ActionRow, CaseRow, NoteRow
from soc_agent.types import Outcome, RunMode, Tier, Verdict, to_db_time, utcnow
from soc_agent.wording import counted

if TYPE_CHECKING:  # the services hold the executor, which imports this module
    from soc_agent.services import Services

_NON_MALICIOUS = (Verdict.BENIGN_POSITIVE, Verdict.FALSE_POSITIVE)


def _status(state: TriageState) -> str:
    decision, action_status = state.get("decision"), state.get("action_status")
    if decision is not None and decision.outcome is Outcome.NEEDS_APPROVAL and decision.mode is RunMode.ENFORCE \
            and state.get("approval") is None:
        return "pending_approval"
    if action_status == "executed" and decision and decision.action:
        if decision.action.name == "close_case":
            return "closed"
        if decision.action.tier is not Tier.OBSERVE:
            return "contained"
    return "open"


def _open_questions(state: TriageState) -> list[str]:
    questions = [f"Not checked: {reason}" for reason in state.get("degraded", [])]
    assessment = state["assessment"]
    if assessment.verdict is Verdict.UNDETERMINED:
        questions.append("The evidence is inconclusive: is this activity expected for these entities?")
    decision = state.get("decision")
    if decision is not None and decision.outcome is Outcome.NEEDS_APPROVAL and state.get("approval") is None \
            and decision.mode is RunMode.ENFORCE:
        questions.append(f"Approve or reject {decision.action.name}: {'; '.join(decision.reason_lines[-3:])}")
    if decision is not None and decision.outcome is Outcome.DENY:
        questions.append("The proposed action was denied by policy: is another response needed?")
    if state.get("proposed") is None:
        questions.append("No playbook response applied: what should happen to this case?")
    return questions


def _noted_status(svc: Services, state: TriageState, status: str) -> str:
    """What the notes say became of the action: an executed no-op (its effect was already in place by
    another action, so it owns nothing to roll back) is not "executed"."""
    action_id = state.get("action_id")
    if status != "executed" or action_id is None:
        return status
    row = svc.store.session.get(ActionRow, action_id)
    try:
        result = json.loads(row.result or "{}") if row is not None else {}
    except ValueError:
        return status
    if not isinstance(result, dict) or result.get("owns") is not False:
        return status
    held_by = result.get("held_by")
    return (f"already in effect (by action {held_by}); this action owns nothing" if held_by is not None
            else "already in effect; this action owns nothing")


def persist_notes(svc: Services, state: TriageState) -> None:
    """Write the notes for the run so far; also used when a run pauses for approval."""
    case, assessment = state["case"], state["assessment"]
    decision = state.get("decision")
    actions = []
    if decision is not None and decision.action is not None:
        action = decision.action
        actions.append(NoteAction(
            name=action.name, tier=str(action.tier), target=action.target.key if action.target else None,
            status=_noted_status(svc, state, state.get("action_status") or (
                "pending approval" if _status(state) == "pending_approval" else "not run")),
            rollback=action.rollback, action_id=state.get("action_id"),
        ))
    title = case.alerts[-1].title if case.alerts else state["alert"].title
    session = svc.store.session
    row = session.get(CaseRow, case.id)
    earlier = None
    if row is not None and row.verdict and row.runs < state["run"] and row.verdict != str(assessment.verdict):
        # A new alert changed the case's verdict: the analyst sees what it was and that it moved.
        earlier = f"{row.verdict} at {row.confidence or 0:.2f} (run {row.runs}, status {row.status})"
    # A closed case stays closed only while nothing in it says otherwise: a malicious or undetermined alert
    # joining it re-opens it, and so does one whose own close now needs a person (a high alert, an intel hit).
    reopened = row is not None and row.status == "closed" and (
        assessment.verdict not in _NON_MALICIOUS or _status(state) == "pending_approval")
    summary = (f"{counted(len(case.alerts), 'distinct alert')} ({', '.join(case.detections)}), "
               f"{counted(case.duplicate_count, 'duplicate')}, {counted(len(case.entities), 'entity', 'entities')}; "
               f"verdict {assessment.verdict} at {assessment.confidence:.2f}; "
               f"{decision.outcome if decision else 'no action'}"
               f"{' (' + decision.action.name + ')' if decision and decision.action else ''}"
               f"{', shadow mode' if decision and decision.mode is RunMode.SHADOW else ''}.")
    notes = CaseNotes(
        case_id=case.id, run=state["run"], title=title, incident_class=state.get("incident_class", "unclassified"),
        playbook=state.get("playbook"), summary=summary,
        timeline=[TimelineEntry(ts=a.timestamp, alert_id=a.id, rule_id=a.rule_id, title=a.title)
                  for a in case.alerts[-50:]],
        entities=[f"{e.key}" + (f" ({e.role})" if e.role else "") for e in case.entities],
        evidence=[NoteEvidence(id=e.id, kind=e.kind, source=e.source, summary=e.summary, weight=e.weight)
                  for e in state["evidence"]],
        verdict=str(assessment.verdict), confidence=assessment.confidence, reasoner=assessment.reasoner,
        reasoning=assessment.rationale, decision=str(decision.outcome) if decision else None,
        decision_reasons=decision.reason_lines if decision else [], actions=actions,
        open_questions=_open_questions(state), similar_cases=state.get("similar", []),
        earlier_verdict=(earlier + (": re-opened by the new evidence" if reopened else "")) if earlier else None,
        trace=traced_nodes(state.get("trace", [])),
    )
    if row is not None and row.runs:
        # Only a case seen before can have people's work on it: a new case's first run skips the query.
        notes.case_work = _case_work(session, case.id)
    markdown = render_markdown(notes)
    now = to_db_time(utcnow())
    svc.store.upsert(NoteRow, {"case_id": case.id, "notes_json": notes.model_dump_json(), "markdown": markdown,
                               "updated_at": now})
    if row is not None:
        row.title, row.incident_class, row.playbook = title[:500], notes.incident_class, notes.playbook
        row.verdict, row.confidence = str(assessment.verdict), assessment.confidence
        row.status = _status(state) if row.status != "closed" or reopened or _status(state) == "contained" \
            else row.status
        if reopened:
            # A person's disposition judged the alerts they saw (those keep their labels); it is no longer the
            # case's, so learning does not hand it to the alert that re-opened the case.
            row.label = None
        row.runs, row.updated_at = state["run"], now
        row.action = decision.action.name if decision and decision.action else None
        row.decision = str(decision.outcome) if decision else None
        row.reasons = json.dumps(decision.reason_lines if decision else [])
    svc.note_files.stage(case.id, markdown)
    svc.audit.append("notes", {"run": state["run"], "verdict": assessment.verdict,
                               "status": row.status if row else None}, case.id, session=session)
    # No commit here: the run's rows land with the caller's next commit (a paused run's at once,
    # see Pipeline._run_batch), so a stream of decisions shares its commits.


def _case_work(session, case_id: str) -> list[str]:
    return [history_line(entry) for entry in case_history(session, case_id)]


def _render_stored(data: dict, fallback_markdown: str | None, case_id: str) -> str:
    """Markdown for stored notes JSON: the notes, then the rollback lines and case status kept beside them."""
    try:
        markdown = render_markdown(CaseNotes.model_validate(data))
    except ValueError:  # no notes yet (or notes of an older shape): what is kept beside them alone
        markdown = (fallback_markdown or f"# Case {inert(case_id, 120)}\n").rstrip("\n") + "\n"
        markdown = markdown.split("\n## Rollbacks\n")[0].split("\n## Case work\n")[0].rstrip("\n") + "\n"
        if data.get("case_work"):
            markdown += "\n## Case work\n\n" + "".join(f"- {inert(line, 4500)}\n" for line in data["case_work"])
    if data.get("rollbacks"):
        markdown += "\n## Rollbacks\n\n" + "".join(f"- {inert(entry, 600)}\n" for entry in data["rollbacks"])
    if data.get("case_status") is not None:
        markdown += f"\nCase status: {data['case_status']}\n"
    return markdown


def refresh_case_work(store, case_id: str, note_files=None) -> None:
    """Rewrite the "Case work" section of the case's notes from the store, in the store's transaction.

    Called after a person closed, reopened, commented on or assigned the case;
    the case's next run rebuilds the notes with the same section.
    """
    session = store.session
    note = session.get(NoteRow, case_id, populate_existing=True)
    data = json.loads(note.notes_json) if note is not None and note.notes_json else {}
    data["case_work"] = _case_work(session, case_id)
    markdown = _render_stored(data, note.markdown if note is not None else None, case_id)
    store.upsert(NoteRow, {"case_id": case_id, "notes_json": json.dumps(data, default=str), "markdown": markdown,
                           "updated_at": to_db_time(utcnow())})
    if note_files is not None:
        note_files.stage(case_id, markdown)


def note_rollback(store, case_id: str, line: str, rolled_back: int | None = None, status: str | None = None,
                  note_files=None) -> None:
    """Add a rollback line to the case's notes (and mark the rolled-back action so), in the store's transaction.

    The lines are kept in the notes JSON under ``rollbacks`` and rendered after the notes; the case's
    next run writes fresh notes.
    """
    session = store.session
    note = session.get(NoteRow, case_id)
    data = json.loads(note.notes_json) if note is not None and note.notes_json else {}
    for action in data.get("actions") or []:
        if rolled_back is not None and action.get("action_id") == rolled_back:
            action["status"] = "rolled back"
    data.setdefault("rollbacks", []).append(line)
    if status is not None:
        data["case_status"] = status
    markdown = _render_stored(data, note.markdown if note is not None else None, case_id)
    store.upsert(NoteRow, {"case_id": case_id, "notes_json": json.dumps(data, default=str), "markdown": markdown,
                           "updated_at": to_db_time(utcnow())})
    if note_files is not None:
        note_files.stage(case_id, markdown)


__all__ = ["note_rollback", "persist_notes", "refresh_case_work"]
