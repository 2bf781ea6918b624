"""The web page: the approval queue, one item, one case, and the forms that act on them.

A module-level :data:`router` that :func:`soc_agent.runners.server.create_app`
includes; handlers find the application's shared state (pipeline, queue,
tokens, lock) at ``request.app.state.soc``.

==============================================  ==========  ===============================================
``GET  /ui/login``, ``POST /ui/login``          none        sign in with an API token (kept in a cookie)
``GET  /ui[?sort=&class=&action=&severity=]``   viewer      pending items; sort by age, severity or class
``POST /ui/approvals/bulk``                     analyst     one decision for several items of one class
                                                            and action; each goes through the queue alone
``GET  /ui/approvals/{id}``                     viewer      one item: reasons, evidence, alerts, raw alerts
``POST /ui/approvals/{id}/decide``              analyst     approve (or shorten the TTL) or reject
``GET  /ui/cases/{id}``                         viewer      timeline, entities, evidence, decisions,
                                                            actions, history, audit trail, notes
``POST /ui/cases/{id}/rollback``                lead        roll an executed action back (as the CLI does)
``POST /ui/cases/{id}/close|reopen|comment``    analyst     the case actions (``CaseActions``)
``POST /ui/cases/{id}/assign``                  analyst
==============================================  ==========  ===============================================

Safety: every value reaches the page through Jinja's autoescape; the one
exception is the case notes, rendered by :func:`notes_html` from Markdown
with raw HTML, links and images switched off, so nothing an alert carries
becomes markup, a script or a link. Posts need the session cookie
(HttpOnly, SameSite=Strict) and a same-origin ``Origin``/``Referer``; the
queue and the executor check the caller's role again (the page only hides
what a role may not do, it never grants it).
"""

from __future__ import annotations

import json
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from connectors.base import ResponderError
from soc_agent.actions import CATALOG, ROLLBACKS
from soc_agent.audit import records as audit_records
from soc_agent.audit_text import describe as describe_record
from soc_agent.pdp.approvals import pending_rows
from soc_agent.responders.executor import describe_status
from soc_agent.runners.api import app_state
from soc_agent.runners.approvals import ApprovalError, Invalid
from soc_agent.runners.auth import Identity, Role
from soc_agent.runners.case_actions import DISPOSITIONS
from soc_agent.runners.limits import read_limited
from soc_agent.runners.tables import ApprovalMetaRow
from soc_agent.store import ActionRow, AlertRow, ApprovalRow, CaseRow
from soc_agent.store.tables import ApprovalVoteRow, CaseEntityRow, DecisionRow
from soc_agent.types import Severity
from soc_agent.wording import a_or_an

COOKIE = "soc_agent_token"
"""The session cookie: the API token, HttpOnly, SameSite=Strict, path ``/ui``."""
_MAX_FORM_BODY = 256 * 1024
_MAX_LOGIN_BODY = 16 * 1024
MAX_BULK = 100
"""Most items one bulk decision takes."""
MAX_ALERTS_SHOWN = 50
"""Alerts (newest) the item and case pages list, each with its raw payload."""
MAX_RAW_CHARS = 64 * 1024
"""A raw payload longer than this is cut on the page (the store keeps it whole)."""
MAX_AUDIT_SHOWN = 500
"""Audit records (newest) the case page says in words; ``soc-agent audit show --case`` has them all."""
SORTS = ("age", "severity", "class")

router = APIRouter()

_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True),
                   trim_blocks=True, lstrip_blocks=True)


# ---- notes as HTML ---------------------------------------------------------------------------------

def _markdown() -> MarkdownIt:
    # CommonMark with tables; raw HTML off (it is shown as text), and no links or images at all:
    # alert text reaches the notes, and a link in an alert's title must not become a link on the page.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    md.disable(["html_inline", "html_block", "link", "image", "autolink"])
    md.validateLink = lambda url: False  # reference definitions and anything else that slips through
    return md


_MD = _markdown()


def notes_html(markdown: str | None) -> Markup:
    """The case notes' Markdown as HTML that carries no markup of its own from the data.

    Raw HTML in the text is escaped, links, autolinks and images are not
    rendered (their text stays as text), so ``<script>``, ``onerror=`` or a
    ``javascript:`` link from an alert arrive as visible, inert text.
    """
    if not markdown:
        return Markup("<p>no notes yet</p>")
    return Markup(_MD.render(markdown))  # the renderer escapes all text: see _markdown()


# ---- request helpers -------------------------------------------------------------------------------

def _who(request: Request) -> Identity | None:
    """The signed-in identity (the session cookie's token), or None."""
    return app_state(request).tokens.authenticate(request.cookies.get(COOKIE))


def same_origin(request: Request) -> bool:
    """A post from this site's own page (or from no page at all: a non-browser client with the cookie)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host")


async def _form(request: Request, limit: int = _MAX_FORM_BODY) -> dict[str, list[str]]:
    """The posted form (a bounded body, :func:`~soc_agent.runners.limits.read_limited`), field -> values."""
    raw = await read_limited(request, limit)
    return parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)


async def _posted(request: Request) -> tuple[Identity, dict[str, list[str]]] | Response:
    """Every form post's preamble: (who, form), or the answer when there is none to act on.

    Not signed in: to the sign-in page. Cross-origin: refused (403) before the body is read.
    """
    who = _who(request)
    if who is None:
        return _login()
    if not same_origin(request):
        return _error(who, "refused", "cross-origin form posts are refused", 403)
    return who, await _form(request)


def _one(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[0]


CSP = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
"""The pages need no script, image or other origin: whatever slipped into one could not run or call out."""


def _page(name: str, who: Identity | None, title: str, flash: str = "", error: bool = False,
          status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(name).render(title=title, who=who, flash=flash, error=error, **context)
    return HTMLResponse(html, status_code=status_code,
                        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                                 "Referrer-Policy": "same-origin"})


def _error(who: Identity | None, title: str, message: str, status_code: int) -> HTMLResponse:
    return _page("message.html", who, title, message, True, status_code)


def _login() -> RedirectResponse:
    return RedirectResponse("/ui/login", status_code=303)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _when(value: datetime | str | None) -> str:
    """A time as the page shows it: ``2026-12-07 12:00:05Z`` (sortable, one width)."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return _aware(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600:02d}h"


def _severity_rank(value: str | None) -> int:
    try:
        return Severity(value).rank
    except ValueError:
        return -1


_env.filters["when"] = _when
_env.filters["age"] = _age


# ---- who may do what (the page hides; the queue and the handlers refuse) -------------------------

def why_not_decide(item: dict[str, Any], who: Identity) -> tuple[str | None, bool]:
    """Why ``who`` cannot decide ``item`` (None: they can), and whether they may still reject it.

    Mirrors the queue's own checks so an analyst on a lead-only item sees the
    reason instead of buttons; the queue still refuses whatever is posted.
    """
    if item["status"] != "pending":
        return f"approval {item['id']} is {item['status']}: nothing to decide", False
    if not who.at_least(Role.ANALYST):
        return f"{who.name} is {a_or_an(str(who.role))}: only an analyst or a lead decides approvals", False
    if item["required_role"] == Role.LEAD and not who.at_least(Role.LEAD):
        why = "it was escalated" if item.get("escalated") else "it touches a crown jewel or is destructive"
        return f"approval {item['id']} needs a lead: {why}", False
    if who.name == item.get("requested_by"):
        return f"{who.name} raised approval {item['id']} and cannot approve it (rejecting is allowed)", True
    if any(vote["by"] == who.name for vote in item.get("approvals", [])):
        return (f"{who.name} already approved {item['id']}; the two-person rule needs a second, different "
                f"approver (rejecting is allowed)"), True
    return None, True


def may_roll_back(who: Identity) -> bool:
    """Rolling back an executed action is a lead's call (as ``soc-agent actions rollback``)."""
    return who.at_least(Role.LEAD)


def _reversible(row: ActionRow) -> bool:
    spec = CATALOG.get(row.name)
    return row.status in ("done", "expired") and spec is not None and spec.rollback in ROLLBACKS


# ---- reading the store -----------------------------------------------------------------------------

def _queue_rows(state, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Queue items with their case's title, severity and class."""
    ids = sorted({item["case_id"] for item in items})
    with state.lock, state.pipeline.store.reader() as session:
        cases = {c.id: c for c in session.exec(select(CaseRow).where(CaseRow.id.in_(ids)))} if ids else {}
    rows = []
    for item in items:
        case = cases.get(item["case_id"])
        rows.append({**item, "title": case.title if case else "", "severity": case.severity if case else "",
                     "incident_class": (case.incident_class if case else None) or "-"})
    return rows


def filter_and_sort(rows: list[dict[str, Any]], sort: str, incident_class: str, action: str,
                    severity: str) -> list[dict[str, Any]]:
    """The queue as the page shows it: filtered on exact values, sorted (oldest or most severe first)."""
    rows = [r for r in rows if (not incident_class or r["incident_class"] == incident_class)
            and (not action or r["action"] == action) and (not severity or r["severity"] == severity)]
    if sort == "severity":
        return sorted(rows, key=lambda r: (-_severity_rank(r["severity"]), -r["age_s"], r["id"]))
    if sort == "class":
        return sorted(rows, key=lambda r: (r["incident_class"], r["action"], -r["age_s"], r["id"]))
    return sorted(rows, key=lambda r: (-r["age_s"], r["id"]))


def _alerts(session, case_id: str) -> list[dict[str, Any]]:
    """The case's newest alerts (oldest first on the page) with their stored payloads, pretty-printed."""
    rows = list(session.exec(select(AlertRow).where(AlertRow.case_id == case_id)
                             .order_by(AlertRow.ts.desc(), AlertRow.id.desc()).limit(MAX_ALERTS_SHOWN)))
    alerts = []
    for row in reversed(rows):
        try:
            payload = json.loads(row.payload)
            raw = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False)
        except ValueError:
            payload, raw = {}, row.payload
        cut = len(raw) > MAX_RAW_CHARS
        alerts.append({"id": row.id, "key": row.key, "ts": _when(row.ts), "rule_id": row.rule_id,
                       "kind": row.kind, "source": row.source, "duplicate_of": row.duplicate_of,
                       "title": payload.get("title", "") if isinstance(payload, dict) else "",
                       "severity": payload.get("severity", "") if isinstance(payload, dict) else "",
                       "raw": raw[:MAX_RAW_CHARS], "raw_cut": len(raw) - MAX_RAW_CHARS if cut else 0})
    return alerts


def _audit_lines(state, case_id: str) -> list[dict[str, Any]]:
    """The case's audit trail in words (the newest ``MAX_AUDIT_SHOWN`` records), oldest first."""
    lines = deque(({"seq": r.seq, "text": describe_record(r)}
                   for r in audit_records(state.pipeline.store.engine, case_id)),
                  maxlen=MAX_AUDIT_SHOWN)
    return list(lines)


def case_view(state, case_id: str) -> dict[str, Any]:
    """Everything the case page shows; raises ``NotFound`` for an unknown case."""
    case = state.queue.case(case_id)
    with state.lock:
        state.pipeline.store.commit()
        with state.pipeline.store.reader() as session:
            row = session.get(CaseRow, case_id)
            alerts = _alerts(session, case_id)
            entities = list(session.exec(select(CaseEntityRow).where(CaseEntityRow.case_id == case_id)
                                         .order_by(CaseEntityRow.kind, CaseEntityRow.value)))
            decisions = list(session.exec(select(DecisionRow).where(DecisionRow.case_id == case_id)
                                          .order_by(DecisionRow.id)))
            action_rows = list(session.exec(select(ActionRow).where(ActionRow.case_id == case_id)
                                            .order_by(ActionRow.id)))
            approvals = _approvals(session, case_id)
    actions_by_id = {a.id: a for a in action_rows}
    actions = []
    for proposed in case["actions"]:
        stored = actions_by_id.pop(proposed.get("action_id"), None)
        actions.append(_action_view(proposed.get("name"), proposed.get("tier"), proposed.get("target"),
                                    proposed.get("status"), proposed.get("rollback"), stored, describe_status))
    for stored in action_rows:  # executed in an earlier run, no longer in the notes
        if stored.id in actions_by_id:
            actions.append(_action_view(stored.name, stored.tier, stored.target_value, describe_status(stored),
                                        stored.rollback, stored, describe_status))
    verdicts = [{"run": d.run, "when": _when(d.created_at), "action": d.action, "tier": d.tier,
                 "target": d.target, "outcome": d.outcome, "mode": d.mode,
                 "reasons": _json_list(d.reasons)} for d in decisions]
    history = state.case_actions.history(case_id)
    timeline = _timeline(alerts, verdicts, approvals, action_rows, case["comments"], history)
    return {"case": case, "assignee": getattr(row, "assignee", None), "incident_class": case["incident_class"],
            "opened_at": _when(row.opened_at) if row else "", "alerts": alerts, "entities": entities,
            "verdicts": verdicts, "actions": actions, "approvals": approvals, "history": history,
            "timeline": timeline, "notes_html": notes_html(case["notes_markdown"]),
            "audit": _audit_lines(state, case_id),
            "dispositions": DISPOSITIONS}


def _approvals(session, case_id: str) -> list[dict[str, Any]]:
    """The case's approval items, decided or not, with each recorded first approval."""
    items = []
    for row in session.exec(select(ApprovalRow).where(ApprovalRow.case_id == case_id).order_by(ApprovalRow.id)):
        meta = session.get(ApprovalMetaRow, row.id)
        votes = session.exec(select(ApprovalVoteRow).where(ApprovalVoteRow.approval_id == row.id)
                             .order_by(ApprovalVoteRow.id))
        items.append({"id": row.id, "action": row.action, "status": row.status, "created_at": row.created_at,
                      "decided_at": row.decided_at, "decided_by": row.decided_by, "comment": row.comment,
                      "requested_by": meta.requested_by if meta else None,
                      "required_role": meta.required_role if meta else "-",
                      "approvals": [{"by": v.approver, "role": v.role, "at": v.created_at} for v in votes]})
    return items


def _json_list(text: str | None) -> list[str]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return [text or ""]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _action_view(name, tier, target, status, rollback, stored: ActionRow | None, describe) -> dict[str, Any]:
    return {"name": name, "tier": tier, "target": target, "status": status, "rollback": rollback,
            "action_id": stored.id if stored else None, "stored_status": describe(stored) if stored else None,
            "approved_by": stored.approved_by if stored else None,
            "reversible": bool(stored and _reversible(stored))}


def _timeline(alerts, verdicts, approvals, action_rows, comments, history) -> list[dict[str, str]]:
    """Alerts, decisions, approvals, actions, comments and case work, in time order."""
    events: list[dict[str, str]] = []
    for a in alerts:
        events.append({"when": a["ts"], "kind": "alert", "who": a["source"],
                       "what": f"{a['rule_id']}: {a['title']} ({a['severity'] or '-'})"})
    for v in verdicts:
        events.append({"when": v["when"], "kind": "decision", "who": "soc-agent",
                       "what": f"run {v['run']}: {v['outcome']} {v['action'] or 'no action'}"
                               + (f" on {v['target']}" if v["target"] else "") + f" ({v['mode']})"})
    for ap in approvals:
        events.append({"when": _when(ap["created_at"]), "kind": "approval", "who": ap["requested_by"] or "soc-agent",
                       "what": f"approval {ap['id']} raised: {ap['action']} needs "
                               f"{'an' if str(ap['required_role'])[:1] in 'aeiou' else 'a'} {ap['required_role']}"})
        for vote in ap.get("approvals", []):
            events.append({"when": _when(vote["at"]), "kind": "approval", "who": vote["by"],
                           "what": f"approval {ap['id']}: first approval ({vote['role']})"})
        if ap["decided_at"]:
            events.append({"when": _when(ap["decided_at"]), "kind": "approval", "who": ap["decided_by"] or "",
                           "what": f"approval {ap['id']} {ap['status']}"
                                   + (f": {ap['comment']}" if ap.get("comment") else "")})
    for row in action_rows:
        events.append({"when": _when(row.created_at), "kind": "action", "who": row.approved_by or "soc-agent",
                       "what": f"action {row.id} {row.name} on {row.target_value or '-'}: {row.status}"})
        try:
            rolled = json.loads(row.result or "{}").get("rollback")
        except ValueError:
            rolled = None
        if isinstance(rolled, dict) and rolled.get("at"):
            events.append({"when": _when(rolled["at"]), "kind": "rollback", "who": str(rolled.get("by", "")),
                           "what": f"action {row.id} {row.name} rolled back"})
    for c in comments:
        events.append({"when": _when(c["created_at"]), "kind": "comment", "who": c["author"],
                       "what": c["body"]})
    for h in history:
        if h.get("kind") == "comment":
            continue  # already listed from the comments
        detail = h.get("disposition") or h.get("assignee") or ""
        words = " ".join(str(x) for x in (h.get("kind"), detail) if x)
        reason = h.get("text") or ""
        events.append({"when": _when(h.get("at")), "kind": str(h.get("kind", "")), "who": str(h.get("who", "")),
                       "what": words + (f": {reason}" if reason else "")})
    return sorted(events, key=lambda e: e["when"])


# ---- sign in ---------------------------------------------------------------------------------------

@router.get("/")
def root() -> RedirectResponse:
    """The site's root is the queue page."""
    return RedirectResponse("/ui", status_code=303)


@router.get("/ui/login")
def login_form() -> HTMLResponse:
    """The sign-in form: one field, the API token."""
    return _page("login.html", None, "sign in")


@router.post("/ui/login")
async def login(request: Request) -> Response:
    """Sign in: a known token (posted from this site) becomes the session cookie; else 401."""
    form = await _form(request, _MAX_LOGIN_BODY)
    token = _one(form, "token")
    if not same_origin(request) or app_state(request).tokens.authenticate(token) is None:
        return _page("login.html", None, "sign in", "unknown token", True, 401)
    response = RedirectResponse("/ui", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/ui")
    return response


# ---- the queue ---------------------------------------------------------------------------------------

@router.get("/ui")
def ui_queue(request: Request, sort: str = "age", incident_class: str = "", action: str = "",
             severity: str = "") -> Response:
    """The pending items, filtered and sorted, with the decision point's pending tool calls."""
    who = _who(request)
    if who is None:
        return _login()
    # ``class`` is the query parameter people type; ``incident_class`` the Python name.
    incident_class = request.query_params.get("class", incident_class)
    state = app_state(request)
    rows = _queue_rows(state, state.queue.list())
    shown = filter_and_sort(rows, sort if sort in SORTS else "age", incident_class, action, severity)
    choices = {"class": sorted({r["incident_class"] for r in rows}), "action": sorted({r["action"] for r in rows}),
               "severity": sorted({r["severity"] for r in rows}, key=lambda s: -_severity_rank(s))}
    # The decision point's tool calls, shown as data.
    tool_calls = [row | {"args": json.dumps(row["call"].get("tool", {}).get("args", {}), ensure_ascii=False,
                                            indent=1)} for row in pending_rows(state.pipeline.store.engine)]
    return _page("queue.html", who, "approval queue", rows=shown, total=len(rows), choices=choices,
                 tool_calls=tool_calls,
                 sort=sort if sort in SORTS else "age", sorts=SORTS,
                 chosen={"class": incident_class, "action": action, "severity": severity},
                 may_decide=who.at_least(Role.ANALYST))


@router.post("/ui/approvals/bulk")
async def ui_bulk(request: Request) -> Response:
    """One decision for several items of the same class and action, each decided by the queue on its own."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    who, form = posted
    decision, comment = _one(form, "decision"), _one(form, "comment")
    state = app_state(request)
    try:
        ids = sorted({int(v) for v in form.get("ids", [])})
    except ValueError:
        return _error(who, "bulk decision", "approval ids are numbers", 422)
    if decision not in ("approve", "reject"):
        return _error(who, "bulk decision", "the decision is approve or reject", 422)
    if not ids:
        return _error(who, "bulk decision", "select at least one item", 422)
    if len(ids) > MAX_BULK:
        return _error(who, "bulk decision", f"at most {MAX_BULK} items at once", 422)

    def run() -> list[dict[str, Any]]:
        state.settle()
        pending = {r["id"]: r for r in _queue_rows(state, state.queue.list())}
        kinds = {(pending[i]["incident_class"], pending[i]["action"]) for i in ids if i in pending}
        if len(kinds) > 1:
            raise Invalid("a bulk decision takes items of one class and one action: "
                          + "; ".join(f"{c} / {a}" for c, a in sorted(kinds)))
        results = []
        for approval_id in ids:
            item = pending.get(approval_id)
            try:
                if item is None:
                    state.queue.show(approval_id)  # a clear 404 or "is approved, not pending"
                    raise Invalid(f"approval {approval_id} is not pending")
                if decision == "approve":
                    outcome = state.queue.approve(approval_id, who, comment)
                else:
                    outcome = state.queue.reject(approval_id, who, comment)
                results.append({"id": approval_id, "ok": True, "case_id": outcome["case_id"],
                                "title": item["title"], "status": outcome["status"],
                                "detail": f"action {outcome.get('action_status') or '-'}"
                                          + (f"; {outcome['note']}" if outcome.get("note") else "")})
            except ApprovalError as exc:
                results.append({"id": approval_id, "ok": False, "case_id": item["case_id"] if item else None,
                                "title": item["title"] if item else "", "status": "refused", "detail": str(exc)})
        return results

    try:
        results = await run_in_threadpool(run)
    except ApprovalError as exc:
        return _error(who, "bulk decision", str(exc), exc.status_code)
    done = sum(1 for r in results if r["ok"])
    flash = f"{decision} by {who.name}: {done} of {len(results)} item(s) decided"
    return _page("bulk.html", who, "bulk decision", flash, error=done < len(results), results=results,
                 decision=decision)


# ---- one item ----------------------------------------------------------------------------------------

@router.get("/ui/approvals/{approval_id}")
def ui_item(approval_id: int, request: Request) -> Response:
    """One item: its reasons, evidence and alerts, and the decision form when ``who`` may decide."""
    who = _who(request)
    if who is None:
        return _login()
    state = app_state(request)
    try:
        item = state.queue.show(approval_id)
    except ApprovalError as exc:
        return _error(who, "approval", str(exc), exc.status_code)
    with state.lock, state.pipeline.store.reader() as session:
        alerts = _alerts(session, item["case_id"])
    blocked, may_reject = why_not_decide(item, who)
    return _page("item.html", who, f"approval {approval_id}", item=item, case=item["case"], alerts=alerts,
                 blocked=blocked, may_reject=may_reject, params_json=json.dumps(item["params"], sort_keys=True))


@router.post("/ui/approvals/{approval_id}/decide")
async def ui_decide(approval_id: int, request: Request) -> Response:
    """Approve (a changed TTL makes it an edit) or reject; answers with the case page."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    who, form = posted
    decision, comment = _one(form, "decision"), _one(form, "comment")
    ttl_text = _one(form, "ttl_seconds").strip()
    state = app_state(request)

    def run() -> dict[str, Any]:
        state.settle()
        if decision == "reject":
            return state.queue.reject(approval_id, who, comment)
        if decision != "approve":
            raise Invalid("unknown decision")
        current = state.queue.show(approval_id)["params"].get("ttl_seconds")
        if ttl_text and ttl_text.isdigit() and int(ttl_text) != current:
            return state.queue.edit(approval_id, who, comment, params={"ttl_seconds": int(ttl_text)})
        return state.queue.approve(approval_id, who, comment)

    try:
        result = await run_in_threadpool(run)
    except ApprovalError as exc:
        return _error(who, "refused", str(exc), exc.status_code)
    flash = f"approval {approval_id} {result['status']} by {who.name}: action {result['action_status'] or '-'}"
    if result.get("note"):
        flash += f" ({result['note']})"
    return _case_page(state, who, result["case_id"], flash)


# ---- one case ----------------------------------------------------------------------------------------

def _case_page(state, who: Identity, case_id: str, flash: str = "", error: bool = False,
               status_code: int = 200) -> Response:
    """The case page (or the error page when the case cannot be shown), with a flash message."""
    try:
        view = case_view(state, case_id)
    except ApprovalError as exc:
        return _error(who, "case", str(exc), exc.status_code)
    return _page("case.html", who, f"case {case_id}", flash, error, status_code, may_roll_back=may_roll_back(who),
                 may_work=who.at_least(Role.ANALYST), **view)


@router.get("/ui/cases/{case_id}")
def ui_case(case_id: str, request: Request) -> Response:
    """One case: timeline, entities, evidence, decisions, actions, history, audit trail, notes."""
    who = _who(request)
    if who is None:
        return _login()
    return _case_page(app_state(request), who, case_id)


@router.post("/ui/cases/{case_id}/rollback")
async def ui_rollback(case_id: str, request: Request) -> Response:
    """Roll back one executed action of the case through the executor, as ``soc-agent actions rollback``."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    who, form = posted
    state = app_state(request)
    if not may_roll_back(who):
        return _case_page(state, who, case_id,
                          f"{who.name} is {a_or_an(str(who.role))}: rolling back an action needs a lead", True, 403)
    action_text = _one(form, "action_id")
    if not action_text.isdigit():
        return _case_page(state, who, case_id, "action_id must be a number", True, 422)
    action_id = int(action_text)

    def run():
        with state.lock:
            executor = state.pipeline.services.executor
            row = state.pipeline.store.session.get(ActionRow, action_id, populate_existing=True)
            if row is None or row.case_id != case_id:
                raise ResponderError(f"case {case_id} has no action {action_id}")
            if executor.note_files is None:  # the markdown files mirror the notes row, as after the CLI's rollback
                executor.note_files = state.pipeline.services.note_files
            try:
                row = executor.rollback(action_id, by=who.name)
            except Exception:
                state.pipeline.store.rollback()
                raise
            return json.loads(row.result).get("rollback", {}), row

    try:
        undone, row = await run_in_threadpool(run)
    except ResponderError as exc:
        return _case_page(state, who, case_id, f"cannot roll back: {exc}", True, 409)
    what = ("it owned nothing (the effect was already in place); nothing lifted" if undone.get("owned") is False
            else f"still held by action {', '.join(map(str, undone['still_held_by']))}"
            if undone.get("still_held_by") else "lifted" if undone.get("lifted") else "undone")
    return _case_page(state, who, case_id,
                      f"action {row.id} ({row.name} on {row.target_value}) rolled back by {who.name}: {what}")


@router.post("/ui/cases/{case_id}/{verb}")
async def ui_case_action(case_id: str, verb: str, request: Request) -> Response:
    """Close with a disposition, reopen, comment or assign, through ``CaseActions`` (who and when audited)."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    who, form = posted
    if verb not in ("close", "reopen", "comment", "assign"):
        return _error(who, "case", f"no case action {verb[:40]!r}", 404)
    state = app_state(request)
    helper = state.case_actions

    def run() -> str:
        state.settle()
        if verb == "close":
            disposition = _one(form, "disposition")
            helper.close(case_id, who, disposition, _one(form, "reason"))
            return f"case {case_id} closed as {disposition} by {who.name}"
        if verb == "reopen":
            helper.reopen(case_id, who, _one(form, "reason"))
            return f"case {case_id} reopened by {who.name}"
        if verb == "comment":
            helper.comment(case_id, who, _one(form, "text"))
            return f"comment added by {who.name}"
        helper.assign(case_id, who, _one(form, "assignee"))
        return f"case {case_id} assigned to {_one(form, 'assignee')} by {who.name}"

    try:
        flash = await run_in_threadpool(run)
    except ApprovalError as exc:
        return _case_page(state, who, case_id, str(exc), True, exc.status_code)
    return _case_page(state, who, case_id, flash)


__all__ = ["COOKIE", "case_view", "filter_and_sort", "may_roll_back", "notes_html",
           "router", "same_origin", "why_not_decide"]
