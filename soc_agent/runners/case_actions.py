"""Case work by people: close with a disposition, reopen, comment, assign.

One implementation behind the CLI, the API, the web page and the ticket
webhook. Rules, in the order they are checked:

* a viewer may do nothing here; an analyst, a lead or a platform operator may
  do everything (``Forbidden``, 403);
* an unknown case is ``NotFound`` (404);
* a disposition is one of ``true_positive | benign_positive | false_positive``
  (what ``soc_agent.learning`` learns from), names are at most 200 characters
  without control characters, a reason or comment at most 4 KiB; anything else
  is ``Invalid`` (422). A close needs a reason, a comment needs text;
* a case a person already closed (status ``closed`` with a label) cannot be
  closed again, and a case that is not closed cannot be reopened
  (``Conflict``, 409). A case the agent closed on its own (no label) can be
  closed by a person, which grades it.

Closing sets the case's status ``closed`` and its ``label``, and labels the
case's alerts, so ``soc-agent learn`` with no arguments learns the
disposition. Reopening restores the status the case had before it was closed
(``open`` if that was ``closed`` too) and withdraws the label from the case
and its alerts; the close stays in the history. Each action is one
``case_events`` or ``case_comments`` row, one audit record (``case.closed``,
``case.reopened``, ``case.commented``, ``case.assigned``, with who, role,
source and when) and a refreshed "Case work" section in the notes, all in one
commit. Refused attempts on an existing case are audited (``case.refused``)
and change nothing else.

Text from people is stored as given; every output escapes it (the notes
through ``notes.inert``, the terminal through ``terminal.safe_text``, the web
page through Jinja autoescape).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from sqlalchemy import update
from sqlmodel import select

from soc_agent.case_history import case_history
from soc_agent.case_notes import refresh_case_work
from soc_agent.learning.labels import LABEL_VALUES
from soc_agent.runners.approvals import ApprovalError, ApprovalQueue, Conflict, Forbidden, Invalid, NotFound
from soc_agent.runners.auth import Identity, Role
from soc_agent.runners.tables import CaseCommentRow
from soc_agent.store import AlertRow, ApprovalRow, CaseRow
from soc_agent.store.tables import CaseEventRow
from soc_agent.types import to_db_time, utcnow

__all__ = ["DISPOSITIONS", "MAX_NAME", "MAX_TEXT", "CaseActions"]

DISPOSITIONS = LABEL_VALUES
"""What a person may close a case as."""
MAX_TEXT = 4096
"""Longest reason or comment, in characters."""
MAX_NAME = 200
"""Longest identity or assignee name, in characters."""
_MAX_SOURCE = 40
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{what} is required")
    if len(value) > MAX_NAME:
        raise Invalid(f"{what} is longer than {MAX_NAME} characters")
    if _CONTROL.search(value):
        raise Invalid(f"{what} holds control characters")
    return value


def _text(value: object, what: str, required: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise Invalid(f"{what} must be text")
    if required and not value.strip():
        raise Invalid(f"{what} is required")
    if len(value) > MAX_TEXT:
        raise Invalid(f"{what} is longer than {MAX_TEXT} characters")
    return value


class CaseActions:
    """Case work by a person: close with a disposition, reopen, comment, assign; audited, in the notes.

    The pipeline is single-writer: every operation holds ``lock`` (share the
    approval queue's in a server).
    """

    def __init__(self, pipeline, lock: threading.RLock | None = None, queue: ApprovalQueue | None = None) -> None:
        """``queue``: the process's approval queue (a server's, which knows its fleet); else one on ``pipeline``."""
        self.pipeline = pipeline
        self.lock = lock or threading.RLock()
        self.queue = queue

    @property
    def _session(self):
        return self.pipeline.store.session

    # ---- the actions ----------------------------------------------------

    def close(self, case_id: str, who: Identity, disposition: str, reason: str, *, source: str = "analyst",
              commit: bool = True) -> dict[str, Any]:
        """Close ``case_id`` as ``disposition`` for ``reason``; label it and its alerts for learning.

        ``source`` names where the decision came from (``analyst``, or a ticket
        provider); ``commit=False`` leaves the work in the writer session for
        the caller's commit (the webhook commits it with the delivery record).
        """
        with self.lock:
            case = self._begin(case_id, who, "close", commit)
            try:
                if disposition not in DISPOSITIONS:
                    raise Invalid(f"disposition must be one of {', '.join(DISPOSITIONS)}, "
                                  f"not {str(disposition)[:40]!r}")
                reason = _text(reason, "reason", required=True)
                source = self._source(source)
                if case.status == "closed" and case.label:
                    raise Conflict(f"case {case_id} is already closed as {case.label}; reopen it to change "
                                   f"the disposition")
                pending = self._pending(case_id, who, disposition)
            except ApprovalError as exc:
                self._refused(case_id, who, "close", exc, commit)
                raise
            for approval_id in pending:
                # A closed case leaves nothing waiting in the queue: its pending actions are rejected by the
                # person closing it, through the queue (so the paused run ends as for any rejection).
                self._approvals().reject(approval_id, who, f"case closed as {disposition}: {reason}")
            if pending:
                self._session.refresh(case)
            # What a reopen restores: the status once nothing waits any more.
            before = case.status
            now = to_db_time(utcnow())
            case.status, case.label, case.updated_at = "closed", disposition, now
            self._session.execute(update(AlertRow).where(AlertRow.case_id == case_id).values(label=disposition))
            self._session.add(CaseEventRow(case_id=case_id, kind="close", who=who.name, role=str(who.role),
                                           source=source, created_at=now, disposition=disposition, reason=reason,
                                           status_before=before))
            return self._finish(case, "case.closed", who, source, now, commit,
                                {"disposition": disposition, "reason": reason, "status_before": before})

    def reopen(self, case_id: str, who: Identity, reason: str = "", *, source: str = "analyst",
               commit: bool = True) -> dict[str, Any]:
        """Reopen a closed case: its status before the close comes back and its disposition is withdrawn."""
        with self.lock:
            case = self._begin(case_id, who, "reopen", commit)
            try:
                reason = _text(reason, "reason", required=False)
                source = self._source(source)
                if case.status != "closed":
                    raise Conflict(f"case {case_id} is {case.status}, not closed")
            except ApprovalError as exc:
                self._refused(case_id, who, "reopen", exc, commit)
                raise
            last_close = self._session.exec(
                select(CaseEventRow).where(CaseEventRow.case_id == case_id, CaseEventRow.kind == "close")
                .order_by(CaseEventRow.id.desc())).first()
            restored = last_close.status_before if last_close is not None else None
            if restored in (None, "closed"):
                restored = "open"
            now = to_db_time(utcnow())
            withdrawn = case.label
            case.status, case.label, case.updated_at = restored, None, now
            # A reopened case is undecided again: learning must not keep reading the withdrawn disposition.
            self._session.execute(update(AlertRow).where(AlertRow.case_id == case_id).values(label=None))
            self._session.add(CaseEventRow(case_id=case_id, kind="reopen", who=who.name, role=str(who.role),
                                           source=source, created_at=now, reason=reason))
            return self._finish(case, "case.reopened", who, source, now, commit,
                                {"reason": reason, "status": restored, "withdrawn_label": withdrawn})

    def comment(self, case_id: str, who: Identity, text: str, source: str = "analyst") -> dict[str, Any]:
        """Add a comment to the case (stored as given, escaped wherever it is shown)."""
        with self.lock:
            case = self._begin(case_id, who, "comment", True)
            try:
                text = _text(text, "comment", required=True)
                source = self._source(source)
            except ApprovalError as exc:
                self._refused(case_id, who, "comment", exc, True)
                raise
            now = to_db_time(utcnow())
            case.updated_at = now
            self._session.add(CaseCommentRow(case_id=case_id, source=source, author=who.name, role=str(who.role),
                                             body=text, created_at=now))
            return self._finish(case, "case.commented", who, source, now, True, {"comment": text})

    def assign(self, case_id: str, who: Identity, assignee: str) -> dict[str, Any]:
        """Make ``assignee`` the person working the case."""
        with self.lock:
            case = self._begin(case_id, who, "assign", True)
            try:
                assignee = _name(assignee, "assignee")
            except ApprovalError as exc:
                self._refused(case_id, who, "assign", exc, True)
                raise
            now = to_db_time(utcnow())
            before = case.assignee
            case.assignee, case.updated_at = assignee, now
            self._session.add(CaseEventRow(case_id=case_id, kind="assign", who=who.name, role=str(who.role),
                                           source="analyst", created_at=now, assignee=assignee))
            return self._finish(case, "case.assigned", who, "analyst", now, True,
                                {"assignee": assignee, "previous_assignee": before})

    def history(self, case_id: str) -> list[dict[str, Any]]:
        """Every disposition, reopening, comment and assignment, with who, role and when, oldest first."""
        with self.lock:
            self._case(case_id)
            return case_history(self._session, case_id)

    # ---- the steps every action shares ------------------------------------

    def _case(self, case_id: str) -> CaseRow:
        if not isinstance(case_id, str) or not case_id or len(case_id) > 200:
            raise NotFound("no such case")
        case = self._session.exec(select(CaseRow).where(CaseRow.id == case_id)
                                  .execution_options(populate_existing=True)).first()
        if case is None:
            raise NotFound(f"no case {case_id!r}")
        return case

    def _approvals(self) -> ApprovalQueue:
        if self.queue is None:
            self.queue = ApprovalQueue(self.pipeline, lock=self.lock)
        return self.queue

    def _pending(self, case_id: str, who: Identity, disposition: str) -> list[int]:
        """The case's pending approvals that closing it as ``disposition`` withdraws.

        Closing as a benign or false positive says no action is needed: the waiting actions are
        rejected by the closer. Withdrawing is rejecting, so it is no way round an item's role
        rules: ``who`` must be allowed to reject every one, checked before anything changes. A true
        positive's waiting actions stay in the queue: the containment question is still open.
        """
        if disposition == "true_positive":
            return []
        pending = list(self._session.exec(select(ApprovalRow.id).where(ApprovalRow.case_id == case_id,
                                                                       ApprovalRow.status == "pending")))
        for approval_id in pending:
            self._approvals().check_may_reject(approval_id, who)
        return pending

    def _begin(self, case_id: str, who: Identity, verb: str, commit: bool) -> CaseRow:
        if commit:
            # What the pipeline had pending is its own work: durable before ours, so a refusal discards none of it.
            self.pipeline.store.commit()
        if not isinstance(who, Identity):
            raise Forbidden("no identity")
        # The role comes first: a viewer learns nothing from the answer, not even whether the case exists.
        if not who.at_least(Role.ANALYST):
            exc = Forbidden(f"{who.role} may not {verb} cases; analyst or lead needed")
            if isinstance(case_id, str) and len(case_id) <= 200 and self._session.get(CaseRow, case_id) is not None:
                self._refused(case_id, who, verb, exc, commit)
            raise exc
        _name(who.name, "name")
        return self._case(case_id)

    @staticmethod
    def _source(source: str) -> str:
        if not isinstance(source, str) or not source or len(source) > _MAX_SOURCE or _CONTROL.search(source):
            raise Invalid("source must be a short name")
        return source

    def _finish(self, case: CaseRow, kind: str, who: Identity, source: str, now, commit: bool,
                details: dict[str, Any]) -> dict[str, Any]:
        self.pipeline.services.audit.append(kind, {"by": who.name, "role": str(who.role), "source": source,
                                                   "at": now.isoformat(), **details},
                                            case.id, session=self._session)
        self._session.flush()  # the writer session does not autoflush: the notes read the row just added
        refresh_case_work(self.pipeline.store, case.id, self.pipeline.services.note_files)
        if commit:
            self.pipeline.store.commit()
        return {"case_id": case.id, "status": case.status, "label": case.label, "assignee": case.assignee,
                "by": who.name, "role": str(who.role), "at": now.isoformat(), **details}

    def _refused(self, case_id: str, who: Identity, verb: str, exc: ApprovalError, commit: bool) -> None:
        self.pipeline.services.audit.append("case.refused", {
            "by": who.name[:MAX_NAME], "role": str(who.role), "attempt": verb, "status": exc.status_code,
            "reason": str(exc)}, case_id, session=self._session)
        if commit:
            self.pipeline.store.commit()
