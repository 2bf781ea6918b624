"""The audit trail in words: one sentence per record (when, who or what, did what, why).

``describe(record)`` turns an audit record (an ``AuditRecord`` or a mapping
with ``ts``, ``kind``, ``case_id`` and ``payload``) into a line such as::

    2026-12-07 12:01 UTC ana.lead (lead) approved isolate_host (approval 3, case case-9f2): comment: host confirmed

The sentence is plain text holding people's and alerts' words as given:
print it through ``terminal.safe_text`` and put it in HTML through Jinja
autoescape. A kind this module does not know is still said, as its name and
its payload's fields, so nothing in the trail is hidden by a missing wording.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["describe"]

_AGENT = "soc-agent"
_MAX_VALUE = 300


def describe(record: Any) -> str:
    """One audit record as one line: ``<when> <who or what> <did what> (<ids>)[: <why>]``."""
    ts, kind, case_id, payload = _fields(record)
    when = ts[:16].replace("T", " ") + " UTC" if ts else "(no time)"
    wording = _WORDINGS.get(kind)
    if wording is None:
        actor, did, why = str(payload.get("by") or _AGENT), f"recorded {kind}", _fields_text(payload)
        ids: list[str] = []
    else:
        actor, did, ids, why = wording(payload)
    if case_id:
        ids = [*ids, f"case {case_id}"]
    where = f" ({', '.join(ids)})" if ids else ""
    return f"{when} {actor} {did}{where}{': ' + why if why else ''}"


# ---- the record ---------------------------------------------------------------------------------


def _fields(record: Any) -> tuple[str, str, str | None, dict[str, Any]]:
    get = record.get if isinstance(record, Mapping) else lambda key: getattr(record, key, None)
    payload = get("payload")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            payload = {"payload": payload}
    if not isinstance(payload, Mapping):
        payload = {} if payload is None else {"payload": payload}
    return str(get("ts") or ""), str(get("kind") or "?"), get("case_id"), dict(payload)


def _short(value: Any, limit: int = _MAX_VALUE) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more chars)"


def _fields_text(payload: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={_short(value, 120)}" for key, value in payload.items() if key != "by")


def _person(payload: Mapping[str, Any], default: str = _AGENT) -> str:
    who = str(payload.get("by") or default)
    context = ", ".join(str(p) for p in (payload.get("role"), _via(payload)) if p)
    return f"{who} ({context})" if context else who


def _via(payload: Mapping[str, Any]) -> str | None:
    source = payload.get("source")
    return f"via {source}" if source and source != "analyst" else None


def _join(*parts: str | None) -> str:
    return "; ".join(p for p in parts if p)


def _labelled(text: str, value: Any) -> str | None:
    return f"{text}: {_short(value, 4096)}" if value else None


# ---- one wording per kind -----------------------------------------------------------------------
# Each returns (actor, did, ids, why).


def _ingest(p):
    return _AGENT, f"took in alert {p.get('alert')} (rule {p.get('rule')})", _run(p), \
        _short("; ".join(map(str, p.get("material") or []))) or ""


def _run(p) -> list[str]:
    return [f"run {p['run']}"] if p.get("run") is not None else []


def _assess(p):
    evidence = p.get("evidence") or []
    score = p.get("score")
    return _AGENT, f"scored the case {score:+.2f}" if isinstance(score, int | float) else "scored the case", \
        _run(p), f"{len(evidence)} evidence item(s): {_short(', '.join(map(str, evidence)))}" if evidence else ""


def _reason(p):
    confidence = p.get("confidence")
    conf = f" at {confidence:.2f}" if isinstance(confidence, int | float) else ""
    return f"{_AGENT} ({p.get('reasoner')} reasoner)", f"judged it {p.get('verdict')}{conf}", _run(p), _join(
        _labelled("proposed", p.get("proposed_action")), _labelled("flags", ", ".join(p.get("flags") or [])))


def _reason_rejected(p):
    return _AGENT, f"set aside the {p.get('reasoner')} reasoner's answer", [], \
        f"it cited unknown evidence {_short(p.get('unknown_evidence'))}; the deterministic verdict stands"


def _decision(p):
    return "the guard", f"said {p.get('outcome')} to {p.get('action')} ({p.get('mode')} mode)", _run(p), \
        _short("; ".join(map(str, p.get("reasons") or [])), 1000)


def _verify(p):
    state = "in effect" if p.get("in_effect") else "NOT in effect"
    return _AGENT, f"checked action {p.get('action_id')}: {state}", _run(p), ""


def _notes(p):
    return _AGENT, "wrote the case notes", _run(p), _join(_labelled("verdict", p.get("verdict")),
                                                          _labelled("status", p.get("status")))


def _intent(p):
    return _AGENT, f"is about to run action {p.get('action_id')}", [], \
        _labelled("approved by", p.get("approved_by")) or ""


def _result(p):
    if p.get("status") == "failed":
        return _AGENT, f"ran action {p.get('action_id')}: it failed", [], _short(p.get("error") or "")
    return _AGENT, f"ran action {p.get('action_id')}: {p.get('status')}", [], _short(p.get("result") or "")


def _recorded(p):
    return _AGENT, f"recorded action {p.get('action_id')} as {p.get('status')} without running it", [], \
        _short(p.get("why") or "")


def _settled(p):
    return _AGENT, f"found action {p.get('action_id')} already done (a retried run)", [], ""


def _rollback(p):
    return _person(p), f"rolled back action {p.get('action_id')}", [], _short(p.get("result") or "")


def _expired_action(p):
    return _AGENT, f"lifted {p.get('effect')} on {p.get('target')}: its time ran out", \
        [f"action {p.get('action_id')}"], ""


def _approval_decided(p):
    verb = {"approved": "approved", "rejected": "rejected", "edit": "approved with changes"}.get(
        str(p.get("decision")), str(p.get("decision")))
    did = f"{verb} {p.get('action')}" + (f" as {p['edited_action']}" if p.get("edited_action") else "")
    return _person(p), did, [f"approval {p.get('approval_id')}"], _join(
        _labelled("comment", p.get("comment")), _labelled("params", p.get("params")),
        _labelled("approvers", ", ".join(p.get("approvers") or [])), _short(p.get("already_in_effect") or ""))


def _first_approval(p):
    return _person(p), f"gave the first of two approvals for {p.get('action')}", \
        [f"approval {p.get('approval_id')}"], _join(_labelled("rule", p.get("rule")),
                                                    _labelled("comment", p.get("comment")))


def _escalated(p):
    return _AGENT, f"escalated the request to a {p.get('to')}", [f"approval {p.get('approval_id')}"], \
        _labelled("expires", p.get("expires_at")) or "nobody decided in time"


def _approval_expired(p):
    return str(p.get("by") or _AGENT), "let the request expire", [f"approval {p.get('approval_id')}"], \
        "nobody decided in time; the action was not run"


def _approval_refused(p):
    return _person(p), f"was refused: {p.get('attempt')} (HTTP {p.get('status')})", \
        [f"approval {p.get('approval_id')}"], _short(p.get("reason") or "")


def _resume_failed(p):
    return _AGENT, "could not resume the run after a decision; the request is pending again", \
        [f"approval {p.get('approval_id')}"], _short(p.get("error") or "")


def _already_in_effect(p):
    verdict = "approved" if p.get("approved") else "rejected"
    did = f"noted that {p.get('effect')} on {p.get('target')} was already in effect when the request was {verdict}"
    return _AGENT, did, [f"approval {p.get('approval_id')}"], \
        _labelled("put in place by action", p.get("by_action")) or ""


def _record_after_execution(p):
    return _AGENT, f"kept action {p.get('action_id')} as {p.get('kept')}: it had already run when a later " \
        f"verdict said {p.get('refused')}", [], _short(p.get("why") or "")


def _resume_queued(p):
    return _person(p), f"handed the {p.get('decision')} decision to the worker that owns the case", \
        [f"approval {p.get('approval_id')}"], _labelled("partition", p.get("partition")) or ""


def _resume_skipped(p):
    return f"worker {p.get('worker')}", "skipped a resume message that no longer applies", \
        [f"approval {p.get('approval_id')}"], _short(p.get("reason") or "")


def _resumed(p):
    did = "resumed the run" if p.get("ran") else "recorded a run that had already finished"
    return f"worker {p.get('worker')}", f"{did} after the {p.get('decision')} decision", \
        [f"approval {p.get('approval_id')}"], _labelled("action", p.get("action_status")) or ""


def _closed(p):
    return _person(p), f"closed the case as {p.get('disposition')}", [], _short(p.get("reason") or "", 4096)


def _reopened(p):
    return _person(p), f"reopened the case (now {p.get('status')})", [], _join(
        _labelled("withdrew", p.get("withdrawn_label")), _labelled("reason", p.get("reason")))


def _commented(p):
    return _person(p), "commented", [], _short(p.get("comment") or "", 4096)


def _assigned(p):
    return _person(p), f"assigned the case to {p.get('assignee')}", [], \
        _labelled("was", p.get("previous_assignee")) or ""


def _case_refused(p):
    return _person(p), f"was refused: {p.get('attempt')} (HTTP {p.get('status')})", [], _short(p.get("reason") or "")


def _case_labelled(p):
    return str(p.get("by") or "unknown"), f"labelled the case {p.get('label')}", \
        [f"{p.get('provider')} ticket {p.get('ticket')}"], ""


def _dead_letter_retry(p):
    ids = [f"dead letter {p.get('id')}"]
    if p.get("result") == "failed":
        return _person(p), "retried a dead letter: it failed again", ids, _short(p.get("reason") or "")
    return _person(p), f"retried a dead letter: {p.get('result')}", ids, _labelled("alert", p.get("alert")) or ""


def _poll_failed(p):
    return _AGENT, f"could not poll {p.get('source')}", [], _join(
        _short(p.get("error") or ""), _labelled("HTTP", p.get("status")), _labelled("missing permission",
                                                                                    p.get("permission")))


_WORDINGS = {
    "node.ingest": _ingest, "node.assess": _assess, "node.reason": _reason, "reason.rejected": _reason_rejected,
    "decision": _decision, "node.verify": _verify, "notes": _notes,
    "action.intent": _intent, "action.result": _result, "action.recorded": _recorded, "action.settled": _settled,
    "action.rollback": _rollback, "action.expired": _expired_action,
    "approval.decided": _approval_decided, "approval.first_approval": _first_approval,
    "approval.escalated": _escalated, "approval.expired": _approval_expired, "approval.refused": _approval_refused,
    "approval.resume_failed": _resume_failed, "approval.already_in_effect": _already_in_effect,
    "action.record_after_execution": _record_after_execution, "approval.resume_queued": _resume_queued,
    "approval.resume_skipped": _resume_skipped, "approval.resumed": _resumed,
    "case.closed": _closed, "case.reopened": _reopened, "case.commented": _commented, "case.assigned": _assigned,
    "case.refused": _case_refused, "case.labelled": _case_labelled,
    "dead_letter.retry": _dead_letter_retry, "source_poll_failed": _poll_failed,
}
