"""The ticketing webhook: signed events in (Jira, ServiceNow, TheHive), notes and status out.

Request authentication (the same for every provider)::

    X-SOC-Agent-Timestamp: <unix seconds>
    X-SOC-Agent-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

The secret is ``$SOC_AGENT_WEBHOOK_SECRET_<PROVIDER>`` (e.g. ``..._JIRA``),
else ``$SOC_AGENT_WEBHOOK_SECRET``; a provider without a secret accepts
nothing. Checks, in order, each changing nothing when it fails. A refusal
before the sender proved it holds the secret (unknown provider, size,
timeout, signature, replay) is only counted, in memory
(``soc_agent_webhook_rejected_total`` in ``/metrics``): a stranger's
requests never grow the store. Later refusals are also recorded in
``webhook_events``:

==========================================  ======
unknown provider                            404
body over ``max_bytes``                     413 (refused before reading it)
body not received in time                   408
missing/malformed headers, timestamp
outside the replay window, bad signature    401
a signature that was already accepted       409 (replay)
not a JSON object, or no event id           400
ticket not linked to any case               404
==========================================  ======

An event id seen before (a provider's redelivery, newly signed) is answered
200 ``duplicate`` and not processed again. Events carrying the agent's own
marker (:data:`MARKER`) are its own updates coming back: accepted, ignored.

Event kinds: a new ticket whose description holds an alert (a JSON object
with ``rule_id``) starts triage and links the ticket to the case; a
disposition (true / benign / false positive) labels the case and its alerts;
a comment is appended to the case. What the agent has to say goes back
through a :class:`TicketSink` with retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from connectors.errors import RateLimited, Unavailable
from soc_agent.runners.tables import CaseCommentRow, TicketLinkRow, TicketPostRow, WebhookEventRow
from soc_agent.store import AlertRow, CaseRow
from soc_agent.types import Verdict, to_db_time, utcnow

TIMESTAMP_HEADER = "X-SOC-Agent-Timestamp"
SIGNATURE_HEADER = "X-SOC-Agent-Signature"
MARKER = "[soc-agent]"
"""Prefix of everything the agent posts to a ticket; events carrying it are ignored (no loops)."""
PROVIDERS = ("jira", "servicenow", "thehive")

_LABELS = {
    "truepositive": Verdict.TRUE_POSITIVE, "benignpositive": Verdict.BENIGN_POSITIVE,
    "falsepositive": Verdict.FALSE_POSITIVE,
}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-SOC-Agent-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


@dataclass
class WebhookConfig:
    """Secrets, replay window and size limit; from ``SOC_AGENT_WEBHOOK_*`` by default."""

    secrets: dict[str, str] = field(default_factory=dict)
    window_s: int = 300
    max_bytes: int = 1024 * 1024

    @classmethod
    def from_env(cls) -> "WebhookConfig":
        """Per-provider secrets, else the shared one; ``..._WINDOW_S`` and ``..._MAX_BYTES``."""
        env = os.environ
        shared = env.get("SOC_AGENT_WEBHOOK_SECRET")
        secrets = {p: s for p in PROVIDERS if (s := env.get(f"SOC_AGENT_WEBHOOK_SECRET_{p.upper()}", shared))}
        return cls(secrets=secrets, window_s=int(env.get("SOC_AGENT_WEBHOOK_WINDOW_S", 300)),
                   max_bytes=int(env.get("SOC_AGENT_WEBHOOK_MAX_BYTES", 1024 * 1024)))


@dataclass
class TicketEvent:
    """One provider event in the shape the webhook acts on."""

    event_id: str
    kind: str
    """created | disposition | comment | ignored"""
    ticket_id: str
    author: str = ""
    text: str = ""
    """The ticket description (created) or the comment body (comment)."""
    disposition: Verdict | None = None


class WebhookRejected(Exception):
    """A refused delivery, with the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class _Stranger(WebhookRejected):
    """Refused before the sender proved it holds the secret: counted, never stored."""


# ---- provider adapters ---------------------------------------------------------------------------


def _label(value: Any) -> Verdict | None:
    if not isinstance(value, str):
        return None
    return _LABELS.get(re.sub(r"[^a-z]", "", value.lower()))


def _jira(body: dict[str, Any], headers: dict[str, str]) -> TicketEvent:
    issue = body.get("issue") or {}
    ticket = str(issue.get("key") or issue.get("id") or "")
    fields = issue.get("fields") or {}
    event = str(body.get("webhookEvent") or "")
    comment = body.get("comment") or {}
    changelog = body.get("changelog") or {}
    suffix = comment.get("id") or changelog.get("id") or body.get("timestamp")
    event_id = headers.get("x-atlassian-webhook-identifier") or f"{event}:{issue.get('id')}:{suffix}"
    author = ((comment.get("author") or body.get("user") or {}).get("name")) or ""
    if event == "jira:issue_created":
        return TicketEvent(event_id, "created", ticket, author, str(fields.get("description") or ""))
    if comment.get("body") is not None and event in ("comment_created", "jira:issue_updated"):
        return TicketEvent(event_id, "comment", ticket, author, str(comment["body"]))
    for item in changelog.get("items") or []:
        if item.get("field") == "resolution" and (label := _label(item.get("toString"))):
            return TicketEvent(event_id, "disposition", ticket, author, disposition=label)
    return TicketEvent(event_id, "ignored", ticket, author)


def _servicenow(body: dict[str, Any], headers: dict[str, str]) -> TicketEvent:
    record = body.get("result") if isinstance(body.get("result"), dict) else body
    ticket = str(record.get("number") or record.get("sys_id") or "")
    event_id = f"{record.get('sys_id')}:{record.get('sys_mod_count')}:{record.get('sys_updated_on')}"
    author = str(record.get("sys_updated_by") or "")
    if label := _label(record.get("close_code")):
        return TicketEvent(event_id, "disposition", ticket, author, disposition=label)
    note = record.get("comments") or record.get("work_notes")
    if note:
        return TicketEvent(event_id, "comment", ticket, author, str(note))
    if str(record.get("sys_mod_count")) == "0":
        return TicketEvent(event_id, "created", ticket, author, str(record.get("description") or ""))
    return TicketEvent(event_id, "ignored", ticket, author)


def _thehive(body: dict[str, Any], headers: dict[str, str]) -> TicketEvent:
    obj = body.get("object") or {}
    object_type = str(body.get("objectType") or "").lower()
    operation = str(body.get("operation") or body.get("action") or "").lower()
    ticket = str(body.get("rootId") or obj.get("id") or obj.get("_id") or body.get("objectId") or "")
    event_id = str(body.get("_id") or f"{body.get('requestId')}:{body.get('objectId')}:{operation}")
    author = str(body.get("_createdBy") or obj.get("updatedBy") or obj.get("_updatedBy") or obj.get("createdBy") or "")
    details = body.get("details") or {}
    if object_type in ("case_task_log", "comment", "case_comment") or obj.get("message") is not None:
        return TicketEvent(event_id, "comment", ticket, author, str(obj.get("message") or obj.get("comment") or ""))
    if object_type in ("case", "alert"):
        if operation in ("creation", "create"):
            return TicketEvent(event_id, "created", ticket, author, str(obj.get("description") or ""))
        if label := _label(details.get("resolutionStatus") or obj.get("resolutionStatus")):
            return TicketEvent(event_id, "disposition", ticket, author, disposition=label)
    return TicketEvent(event_id, "ignored", ticket, author)


ADAPTERS = {"jira": _jira, "servicenow": _servicenow, "thehive": _thehive}


def alert_in(text: str) -> bytes | None:
    """The alert a ticket carries: a JSON object with ``rule_id`` in its description (fenced or bare)."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict) and "rule_id" in value:
            return json.dumps(value).encode()
    return None


# ---- posting back --------------------------------------------------------------------------------


class TicketSink(Protocol):
    """Where notes and status go back to a ticket (the connectors' ticket responders implement it)."""

    def post(self, provider: str, ticket_id: str, kind: str, body: str) -> None:
        """Post ``body`` (already carrying :data:`MARKER`) to the ticket; raise a ConnectorError on failure."""
        ...


class LocalTicketSink:
    """Records what would be posted; the embedded default and the tests' sink."""

    def __init__(self) -> None:
        self.posted: list[dict[str, str]] = []

    def post(self, provider: str, ticket_id: str, kind: str, body: str) -> None:
        """Keep the post in memory (the delivery log is ``ticket_posts``)."""
        self.posted.append({"provider": provider, "ticket_id": ticket_id, "kind": kind, "body": body})


RETRY_WAIT = wait_exponential(multiplier=0.5, max=8)
"""Module-level so tests can make retries instant."""


class TicketPoster:
    """Posts the agent's updates to every ticket linked to a case, with retries, marked to prevent loops."""

    def __init__(self, sink: TicketSink, store) -> None:
        self.sink = sink
        self.store = store

    def post_case(self, case_id: str, kind: str, body: str) -> None:
        """Post ``body`` to each ticket linked to ``case_id``; the delivery is recorded in ``ticket_posts``."""
        session = self.store.session
        links = session.exec(select(TicketLinkRow).where(TicketLinkRow.case_id == case_id)).all()
        for link in links:
            row = TicketPostRow(provider=link.provider, ticket_id=link.ticket_id, case_id=case_id, kind=kind,
                                body=f"{MARKER} {body}", created_at=to_db_time(utcnow()))
            attempts = 0

            @retry(retry=retry_if_exception_type((RateLimited, Unavailable)), stop=stop_after_attempt(4),
                   wait=RETRY_WAIT, reraise=True)
            def send() -> None:
                nonlocal attempts
                attempts += 1
                self.sink.post(row.provider, row.ticket_id, kind, row.body)

            try:
                send()
                row.status = "sent"
            except Exception as exc:  # a failed post must not fail the triage or the approval
                row.status = f"failed: {type(exc).__name__}"[:100]
            row.attempts = attempts
            session.add(row)
        self.store.commit()


# ---- the handler ---------------------------------------------------------------------------------


class WebhookHandler:
    """Verifies, deduplicates and applies ticketing events through the server's one pipeline."""

    def __init__(self, queue, config: WebhookConfig, poster: TicketPoster) -> None:
        self.queue = queue
        self.pipeline = queue.pipeline
        self.lock: threading.RLock = queue.lock
        self.config = config
        self.poster = poster
        self._rejected: Counter[tuple[str, int]] = Counter()
        self._rejected_lock = threading.Lock()
        queue.listeners.append(self._on_decision)

    def count_rejected(self, provider: str, status: int) -> None:
        """Count one refused delivery (labels are bounded: an unknown provider is ``unknown``)."""
        with self._rejected_lock:
            self._rejected[(provider if provider in ADAPTERS else "unknown", int(status))] += 1

    def rejected_counts(self) -> dict[tuple[str, int], int]:
        """Refused deliveries by (provider, HTTP status) since this handler started."""
        with self._rejected_lock:
            return dict(self._rejected)

    def handle(self, provider: str, headers: dict[str, str], body: bytes, oversize: bool = False) -> dict[str, Any]:
        """Process one delivery; raises :class:`WebhookRejected` (already recorded) when refused."""
        headers = {k.lower(): v for k, v in headers.items()}
        with self.lock:
            try:
                return self._handle(provider, headers, body, oversize)
            except WebhookRejected as exc:
                self.count_rejected(provider, exc.status)
                if not isinstance(exc, _Stranger):
                    self._record(provider, exc.status, "rejected", str(exc), size=len(body))
                raise

    def _handle(self, provider: str, headers: dict[str, str], body: bytes, oversize: bool) -> dict[str, Any]:
        adapter = ADAPTERS.get(provider)
        if adapter is None:
            raise _Stranger(404, f"unknown provider {provider[:40]!r}")
        if oversize or len(body) > self.config.max_bytes:
            raise _Stranger(413, f"body over {self.config.max_bytes} bytes")
        signature = self._verify(provider, headers, body)
        if self._seen(WebhookEventRow.signature == signature):
            raise _Stranger(409, "replayed request: this signature was already accepted")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookRejected(400, "body is not JSON") from None
        if not isinstance(payload, dict):
            raise WebhookRejected(400, "body is not a JSON object")
        event = adapter(payload, headers)
        if not event.event_id or not event.ticket_id:
            raise WebhookRejected(400, "no event id or ticket id in the event")
        key = f"{provider}:{event.event_id}"
        if self._seen(WebhookEventRow.event_key == key):
            self._record(provider, 200, "duplicate", "event already processed", signature=signature,
                         kind=event.kind, ticket_id=event.ticket_id, size=len(body))
            return {"status": "duplicate", "event_id": event.event_id}
        if MARKER in event.text:
            return self._accept(provider, key, signature, event, None, "the agent's own update", len(body))
        if event.kind == "created":
            return self._created(provider, key, signature, event, len(body))
        if event.kind in ("disposition", "comment"):
            link = self.pipeline.store.session.get(TicketLinkRow, (provider, event.ticket_id))
            if link is None:
                raise WebhookRejected(404, f"ticket {event.ticket_id[:80]!r} is not linked to any case")
            if event.kind == "disposition":
                self._label(link.case_id, event.disposition, provider, event)
            else:
                self.pipeline.store.session.add(CaseCommentRow(
                    case_id=link.case_id, source=provider, author=event.author[:200] or "unknown",
                    body=event.text[:20000], created_at=to_db_time(utcnow())))
            return self._accept(provider, key, signature, event, link.case_id, "", len(body))
        return self._accept(provider, key, signature, event, None, "nothing to do for this event", len(body))

    def _verify(self, provider: str, headers: dict[str, str], body: bytes) -> str:
        secret = self.config.secrets.get(provider)
        timestamp = headers.get(TIMESTAMP_HEADER.lower())
        given = headers.get(SIGNATURE_HEADER.lower())
        if not secret:
            raise _Stranger(401, f"no secret configured for {provider}")
        if not timestamp or not given:
            raise _Stranger(401, f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
        timestamp = timestamp.strip()
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise _Stranger(401, "malformed timestamp")
        if abs(time.time() - int(timestamp)) > self.config.window_s:
            raise _Stranger(401, f"timestamp outside the {self.config.window_s}s replay window")
        expected = sign(secret, timestamp, body)
        if not hmac.compare_digest(expected.encode(), given.strip().encode("utf-8", "replace")):
            raise _Stranger(401, "bad signature")
        return expected

    def _created(self, provider: str, key: str, signature: str, event: TicketEvent, size: int) -> dict[str, Any]:
        line = alert_in(event.text)
        if line is None:
            return self._accept(provider, key, signature, event, None, "no alert in the ticket", size)
        results = self.pipeline.process_line(line, source=f"webhook:{provider}")
        self.pipeline.store.commit()
        if not results or results[0].case_id is None:
            return self._accept(provider, key, signature, event, None, "the alert was dead-lettered", size)
        result = results[0]
        session = self.pipeline.store.session
        if session.get(TicketLinkRow, (provider, event.ticket_id)) is None:
            session.add(TicketLinkRow(provider=provider, ticket_id=event.ticket_id, case_id=result.case_id,
                                      created_at=to_db_time(utcnow())))
        response = self._accept(provider, key, signature, event, result.case_id, "", size)
        if event.author:
            self.queue.raised_by(result.case_id, event.author)
        self.poster.post_case(result.case_id, "note",
                              f"triaged: verdict {result.verdict} ({result.confidence}), "
                              f"{result.decision or 'no decision'} {result.action or ''}; status {result.status}")
        response.update(triage=result.status, decision=result.decision, action=result.action)
        return response

    def _label(self, case_id: str, label: Verdict, provider: str, event: TicketEvent) -> None:
        session = self.pipeline.store.session
        session.execute(update(CaseRow).where(CaseRow.id == case_id).values(label=str(label)))
        session.execute(update(AlertRow).where(AlertRow.case_id == case_id).values(label=str(label)))
        self.pipeline.services.audit.append("case.labelled", {"label": str(label), "by": event.author,
                                                              "provider": provider, "ticket": event.ticket_id},
                                            case_id, session=session)

    def _accept(self, provider: str, key: str, signature: str, event: TicketEvent, case_id: str | None,
                reason: str, size: int) -> dict[str, Any]:
        kind = event.kind if not reason else "ignored"
        self.pipeline.store.session.add(WebhookEventRow(
            provider=provider, event_key=key, signature=signature, received_at=to_db_time(utcnow()),
            http_status=200, outcome="accepted", reason=reason, kind=kind, ticket_id=event.ticket_id[:200],
            case_id=case_id, size=size))
        try:
            self.pipeline.store.commit()
        except IntegrityError:
            # Another process accepted the same event or signature in between.
            self.pipeline.store.session.rollback()
            raise WebhookRejected(409, "event or signature already accepted") from None
        return {"status": "accepted", "kind": kind, "case_id": case_id, "event_id": event.event_id,
                **({"note": reason} if reason else {})}

    def _seen(self, condition) -> bool:
        with Session(self.pipeline.store.engine) as session:
            return session.exec(select(WebhookEventRow.id).where(condition)).first() is not None

    def _record(self, provider: str, status: int, outcome: str, reason: str, signature: str | None = None,
                kind: str | None = None, ticket_id: str | None = None, size: int = 0) -> None:
        self.pipeline.store.session.add(WebhookEventRow(
            provider=provider[:40], signature=signature, received_at=to_db_time(utcnow()), http_status=status,
            outcome=outcome, reason=reason[:500], kind=kind, ticket_id=ticket_id, size=size))
        self.pipeline.store.commit()

    def _on_decision(self, case_id: str, event: dict[str, Any]) -> None:
        verb = "approved" if event.get("approved") else "rejected"
        self.poster.post_case(case_id, "decision",
                              f"approval {event['approval_id']} {verb} by {event['by']}; "
                              f"action {event.get('action_status')}")
