"""The ticketing webhook: authenticated events in (Jira, ServiceNow, TheHive), notes and status out.

Each provider is authenticated the way it sends natively, chosen per provider
with ``$SOC_AGENT_WEBHOOK_AUTH_<PROVIDER>`` (set-up in each vendor's own
terms: ``docs/webhooks.md``):

=================  ==============================================================================
``soc-agent``      the default: ``X-SOC-Agent-Timestamp: <unix seconds>`` and
                   ``X-SOC-Agent-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``
                   (a relay or a script signs); timestamps outside ``window_s`` are refused
``hub-signature``  Jira's webhook secret: ``X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>``
``basic``          ``Authorization: Basic`` (ServiceNow outbound REST, TheHive endpoints, Jira Data Center)
``bearer``         ``Authorization: Bearer <token>`` (ServiceNow OAuth 2.0 profile, TheHive endpoints)
=================  ==============================================================================

The HMAC secret is ``$SOC_AGENT_WEBHOOK_SECRET_<PROVIDER>`` (e.g. ``..._JIRA``),
else ``$SOC_AGENT_WEBHOOK_SECRET``; Basic is ``..._USERNAME_<PROVIDER>`` and
``..._PASSWORD_<PROVIDER>``, bearer ``..._TOKEN_<PROVIDER>``. Any scheme may
also require a shared header: its name in ``..._HEADER_<PROVIDER>``, its value
in ``..._HEADER_SECRET_<PROVIDER>`` (ServiceNow's HTTP Headers). A provider
without its credentials accepts nothing, and one scheme per provider: a
provider set to ``hub-signature`` refuses an ``X-SOC-Agent`` signature and
the other way round. Every comparison is constant-time.

Checks, in order, each changing nothing when it fails. A refusal before the
sender proved who it is (unknown provider, size, timeout, authentication,
replayed signature) is only counted, in memory
(``soc_agent_webhook_rejected_total`` in ``/metrics``): a stranger's requests
never grow the store, and a 401 says no more than "authentication failed"
for the native schemes. Later refusals are also recorded in
``webhook_events``:

==========================================  ======
unknown provider                            404
body over ``max_bytes``                     413 (refused before reading it)
body not received in time                   408
authentication missing or wrong (any
scheme), ``soc-agent`` timestamp outside
the replay window                           401
a ``soc-agent`` signature already accepted  409 (replay)
not a JSON object, or no event id           400
ticket not linked to any case               404
==========================================  ======

Replays are processed once. A ``soc-agent`` delivery's signature covers its
timestamp, so a second use of one is refused (409). The native schemes sign
or authenticate no timestamp: a body already accepted is answered 200
``duplicate`` and not stored again (a vendor's retry, or a captured delivery
sent again with a new delivery id header). Beyond that, an event id seen
before is answered 200 ``duplicate`` and not processed again: Jira's
``X-Atlassian-Webhook-Identifier`` (unchanged across its retries), ServiceNow's
``sys_id`` + ``sys_mod_count`` + ``sys_updated_on``, TheHive's ``_id`` (else
``requestId`` + ``objectId`` + operation) with the event's timestamp. Events
carrying the agent's own marker (:data:`MARKER`) are its own updates coming
back: accepted, ignored.

Event kinds: a new ticket whose description holds an alert (a JSON object
with ``rule_id``) starts triage and links the ticket to the case; a
disposition (true / benign / false positive) closes the case with that
label, as its author, through the same case actions a person uses (so the
alerts are labelled for learning); a comment is appended to the case. What the agent has to say goes back
through a :class:`TicketSink` with retries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from connectors.errors import RateLimited, Unavailable
from soc_agent.config_file import ConfigError
from soc_agent.runners.approvals import ApprovalError
from soc_agent.runners.auth import Identity, Role
from soc_agent.runners.case_actions import MAX_NAME, MAX_TEXT, CaseActions
from soc_agent.runners.errors import Rejected
from soc_agent.runners.limits import read_limited
from soc_agent.runners.tables import CaseCommentRow, TicketLinkRow, TicketPostRow, WebhookEventRow
from soc_agent.store import CaseRow
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


SOC_AGENT, HUB_SIGNATURE, BASIC, BEARER = "soc-agent", "hub-signature", "basic", "bearer"
SCHEMES = (SOC_AGENT, HUB_SIGNATURE, BASIC, BEARER)
"""How a provider proves a delivery is its own (``$SOC_AGENT_WEBHOOK_AUTH_<PROVIDER>``)."""
HUB_SIGNATURE_HEADER = "X-Hub-Signature"
_BODY_TOKEN = "body-sha256:"
"""Prefix of the replay token of a native-scheme delivery (the digest of its body)."""
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
"""An HTTP header name (RFC 9110 token); a shared header outside it could never match."""


class WebhookConfigError(ConfigError):
    """A webhook setting that cannot work (unknown scheme, missing credentials); ``file`` is the variable."""


@dataclass(frozen=True)
class ProviderAuth:
    """How one provider's deliveries are authenticated; the secrets never leave this object."""

    scheme: str = SOC_AGENT
    """soc-agent | hub-signature | basic | bearer"""
    secret: str = field(default="", repr=False)
    """The HMAC key of ``soc-agent`` and ``hub-signature`` (Jira's webhook Secret)."""
    username: str = ""
    """``basic``: the user name the provider sends."""
    password: str = field(default="", repr=False)
    """``basic``: the password the provider sends."""
    token: str = field(default="", repr=False)
    """``bearer``: the token the provider sends."""
    header: str = ""
    """Optional shared header every delivery must carry (any scheme), e.g. ServiceNow's HTTP Headers."""
    header_secret: str = field(default="", repr=False)
    """The value that shared header must have."""

    def problem(self) -> str | None:
        """What is missing for this scheme to accept anything (None when complete)."""
        if self.scheme not in SCHEMES:
            return f"unknown scheme {self.scheme!r} (one of {', '.join(SCHEMES)})"
        missing = {SOC_AGENT: not self.secret, HUB_SIGNATURE: not self.secret,
                   BASIC: not (self.username and self.password), BEARER: not self.token}[self.scheme]
        if missing:
            return {SOC_AGENT: "no secret", HUB_SIGNATURE: "no secret", BASIC: "no username or password",
                    BEARER: "no token"}[self.scheme]
        if self.header and not (_HEADER_NAME.match(self.header) and self.header_secret):
            return "a shared header needs a valid header name and a value"
        if self.header_secret and not self.header:
            return "a shared header value without a header name"
        return None


@dataclass
class WebhookConfig:
    """Per-provider authentication, replay window and size limit; from ``SOC_AGENT_WEBHOOK_*`` by default."""

    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    """HMAC secrets by provider, used by a provider whose :attr:`auth` entry has none (or which has none)."""
    window_s: int = 300
    """How old a ``soc-agent`` timestamp may be (seconds)."""
    max_bytes: int = 1024 * 1024
    """The largest body read (413 above it, before reading)."""
    auth: dict[str, ProviderAuth] = field(default_factory=dict)
    """How each provider authenticates; a provider absent here uses ``soc-agent`` with its secret."""

    def auth_for(self, provider: str) -> ProviderAuth:
        """The provider's authentication, its HMAC secret filled from :attr:`secrets` when not given."""
        auth = self.auth.get(provider) or ProviderAuth()
        if not auth.secret and self.secrets.get(provider):
            auth = replace(auth, secret=self.secrets[provider])
        return auth

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> WebhookConfig:
        """Per-provider ``..._AUTH_<P>`` and credentials, secrets else the shared one, window and size.

        Raises :class:`WebhookConfigError` for an unknown scheme, or a scheme chosen explicitly whose
        credentials are missing (a provider left at the default without a secret simply accepts nothing).
        """
        env = os.environ if environ is None else environ
        prefix = "SOC_AGENT_WEBHOOK_"
        shared = env.get(f"{prefix}SECRET")
        secrets = {p: s for p in PROVIDERS if (s := env.get(f"{prefix}SECRET_{p.upper()}", shared))}
        auth: dict[str, ProviderAuth] = {}
        for provider in PROVIDERS:
            name = provider.upper()
            scheme = (env.get(f"{prefix}AUTH_{name}") or "").strip().lower()
            entry = ProviderAuth(
                scheme=scheme or SOC_AGENT, secret=secrets.get(provider, ""),
                username=env.get(f"{prefix}USERNAME_{name}", ""), password=env.get(f"{prefix}PASSWORD_{name}", ""),
                token=env.get(f"{prefix}TOKEN_{name}", ""), header=(env.get(f"{prefix}HEADER_{name}") or "").strip(),
                header_secret=env.get(f"{prefix}HEADER_SECRET_{name}", ""))
            problem = entry.problem()
            if problem and (scheme or entry.header or entry.header_secret or problem.startswith("unknown")):
                raise WebhookConfigError(f"{prefix}AUTH_{name}={entry.scheme}: {problem}", file=f"{prefix}AUTH_{name}")
            auth[provider] = entry
        try:
            window_s = int(env.get(f"{prefix}WINDOW_S", 300))
            max_bytes = int(env.get(f"{prefix}MAX_BYTES", 1024 * 1024))
        except ValueError:
            raise WebhookConfigError(f"{prefix}WINDOW_S and {prefix}MAX_BYTES must be whole numbers",
                                     file=f"{prefix}WINDOW_S") from None
        return cls(secrets=secrets, window_s=window_s, max_bytes=max_bytes, auth=auth)


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


class _Stranger(Rejected):
    """Refused before the sender proved it holds the secret: counted, never stored."""


# ---- authentication ------------------------------------------------------------------------------


def _same(given: str | None, expected: str) -> bool:
    """Constant-time equality of a header value (any characters, as the server decoded them) and a secret."""
    if given is None or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def hub_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Jira sends for ``body``: ``sha256=<hex HMAC-SHA256(secret, body)>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _native_ok(auth: ProviderAuth, headers: dict[str, str], body: bytes) -> bool:
    """Whether the request carries the provider's own proof (``hub-signature``, ``basic`` or ``bearer``)."""
    if auth.scheme == HUB_SIGNATURE:
        given = headers.get(HUB_SIGNATURE_HEADER.lower())
        # The method is part of the value: "sha1=..." or a bare hex digest never matches.
        return given is not None and _same(given.strip().lower(), hub_signature(auth.secret, body))
    kind, _, credentials = (headers.get("authorization") or "").strip().partition(" ")
    if auth.scheme == BEARER:
        return kind.lower() == "bearer" and _same(credentials.strip(), auth.token)
    if auth.scheme == BASIC and kind.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True)
        except (binascii.Error, ValueError):  # not base64, or not ASCII at all
            return False
        user, colon, password = decoded.partition(b":")
        # Both compared whatever the first says, so the time taken does not tell which one was wrong.
        user_ok = hmac.compare_digest(user, auth.username.encode("utf-8"))
        password_ok = hmac.compare_digest(password, auth.password.encode("utf-8"))
        return bool(colon) and user_ok and password_ok
    return False


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


def _servicenow_event_id(record: dict[str, Any]) -> str:
    """``sys_id:sys_mod_count:sys_updated_on`` (each version of a record once); empty without ``sys_id``.

    A message that leaves out both version fields is keyed by its content instead, so two different
    updates of one record are never taken for each other.
    """
    sys_id = record.get("sys_id")
    if not sys_id:
        return ""
    count, updated = record.get("sys_mod_count"), record.get("sys_updated_on")
    if count is None and updated is None:
        return f"{sys_id}:sha256:{hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()}"
    return f"{sys_id}:{count}:{updated}"


def _thehive_event_id(body: dict[str, Any], operation: str) -> str:
    """The audit entry's ``_id`` (else ``requestId:objectId:operation``) with its timestamp; empty without ids."""
    stamp = body.get("_createdAt") or body.get("startDate") or ""
    if body.get("_id"):
        return f"{body['_id']}:{stamp}"
    if not (body.get("requestId") or body.get("objectId")):
        return ""
    return f"{body.get('requestId')}:{body.get('objectId')}:{operation}:{stamp}"


def _servicenow(body: dict[str, Any], headers: dict[str, str]) -> TicketEvent:
    record = body.get("result") if isinstance(body.get("result"), dict) else body
    ticket = str(record.get("number") or record.get("sys_id") or "")
    event_id = _servicenow_event_id(record)
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
    event_id = _thehive_event_id(body, operation)
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
        """Process one delivery; raises :class:`~soc_agent.runners.errors.Rejected` (already recorded) when refused."""
        headers = {k.lower(): v for k, v in headers.items()}
        with self.lock:
            try:
                return self._handle(provider, headers, body, oversize)
            except Rejected as exc:
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
            if signature.startswith(_BODY_TOKEN):
                # A native scheme's retry or replay: the sender authenticated, the body was processed once.
                return {"status": "duplicate", "note": "this delivery was already processed"}
            raise _Stranger(409, "replayed request: this signature was already accepted")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise Rejected(400, "body is not JSON") from None
        if not isinstance(payload, dict):
            raise Rejected(400, "body is not a JSON object")
        event = adapter(payload, headers)
        if not event.event_id or not event.ticket_id:
            raise Rejected(400, "no event id or ticket id in the event")
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
                raise Rejected(404, f"ticket {event.ticket_id[:80]!r} is not linked to any case")
            if event.kind == "disposition":
                self._label(link.case_id, event.disposition, provider, event)
            else:
                self.pipeline.store.session.add(CaseCommentRow(
                    case_id=link.case_id, source=provider, author=event.author[:200] or "unknown",
                    body=event.text[:20000], created_at=to_db_time(utcnow())))
            return self._accept(provider, key, signature, event, link.case_id, "", len(body))
        return self._accept(provider, key, signature, event, None, "nothing to do for this event", len(body))

    def _verify(self, provider: str, headers: dict[str, str], body: bytes) -> str:
        """The delivery's replay token once its sender is authenticated, else :class:`_Stranger` (401).

        ``soc-agent``: the signature (it covers the timestamp). Native schemes: ``body-sha256:<hex>``.
        """
        auth = self.config.auth_for(provider)
        if auth.problem() is not None:
            raise _Stranger(401, "authentication failed")
        if auth.header and not _same(headers.get(auth.header.lower()), auth.header_secret):
            raise _Stranger(401, "authentication failed")
        if auth.scheme == SOC_AGENT:
            return self._verify_signed_timestamp(auth.secret, headers, body)
        if not _native_ok(auth, headers, body):
            raise _Stranger(401, "authentication failed")
        return _BODY_TOKEN + hashlib.sha256(body).hexdigest()

    def _verify_signed_timestamp(self, secret: str, headers: dict[str, str], body: bytes) -> str:
        timestamp = headers.get(TIMESTAMP_HEADER.lower())
        given = headers.get(SIGNATURE_HEADER.lower())
        if not timestamp or not given:
            raise _Stranger(401, f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
        timestamp = timestamp.strip()
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise _Stranger(401, "malformed timestamp")
        if abs(time.time() - int(timestamp)) > self.config.window_s:
            raise _Stranger(401, f"timestamp outside the {self.config.window_s}s replay window")
        expected = sign(secret, timestamp, body)
        if not _same(given.strip(), expected):
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
        """A disposition closes the case through the same case actions a person uses (in this delivery's commit).

        The ticket's author is who closed it, as an analyst, with the provider as source; a ticket that
        changes its resolution reopens and re-closes the case, and one that repeats it changes nothing.
        """
        author = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069]", "", event.author or "").strip()
        who = Identity(name=author[:MAX_NAME] or f"{provider} user", role=Role.ANALYST)
        reason = (f"{provider} ticket {event.ticket_id[:200]} resolved as {label}"
                  + (f": {event.text}" if event.text else ""))[:MAX_TEXT]
        actions = CaseActions(self.pipeline, self.lock, self.queue)
        case = self.pipeline.store.session.get(CaseRow, case_id, populate_existing=True)
        try:
            if case is not None and case.status == "closed" and case.label:
                if case.label == str(label):
                    return
                actions.reopen(case_id, who, f"{provider} ticket {event.ticket_id[:200]} changed its resolution",
                               source=provider, commit=False)
            actions.close(case_id, who, str(label), reason, source=provider, commit=False)
        except ApprovalError as exc:
            raise Rejected(exc.status_code, str(exc)[:300]) from None

    def _accept(self, provider: str, key: str, signature: str, event: TicketEvent, case_id: str | None,
                reason: str, size: int) -> dict[str, Any]:
        """Record the event as accepted and answer 200; with a ``reason`` it was accepted and ignored."""
        kind = event.kind if not reason else "ignored"
        self._record_accepted(provider, key, signature, event, kind, case_id, reason, size)
        return {"status": "accepted", "kind": kind, "case_id": case_id, "event_id": event.event_id,
                **({"note": reason} if reason else {})}

    def _record_accepted(self, provider: str, key: str, signature: str, event: TicketEvent, kind: str,
                         case_id: str | None, reason: str, size: int, http_status: int = 200,
                         queued_alert: str | None = None, raised_by: str | None = None) -> None:
        """Store the accepted event (its key and signature are unique: a second acceptance is 409).

        ``queued_alert`` and ``raised_by``: broker mode's link still to make (``WebhookEventRow``).
        """
        self.pipeline.store.session.add(WebhookEventRow(
            provider=provider, event_key=key, signature=signature, received_at=to_db_time(utcnow()),
            http_status=http_status, outcome="accepted", reason=reason, kind=kind, ticket_id=event.ticket_id[:200],
            case_id=case_id, size=size, queued_alert=queued_alert, raised_by=raised_by))
        try:
            self.pipeline.store.commit()
        except IntegrityError:
            # Another process accepted the same event or signature in between.
            self.pipeline.store.session.rollback()
            raise Rejected(409, "event or signature already accepted") from None

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


# ---- the endpoint --------------------------------------------------------------------------------

router = APIRouter()


@router.post("/webhooks/{provider}")
async def webhook(provider: str, request: Request) -> Any:
    """One delivery from ``provider``: 200, 202 when its alert was queued for the fleet, else refused.

    Refused before a byte is read: an unknown provider, then a body over the
    limit or too slow. Those are counted in /metrics, never stored (a
    stranger's requests must not grow the store).
    """
    handler: WebhookHandler = request.app.state.soc.webhooks
    if provider not in ADAPTERS:
        handler.count_rejected(provider, 404)
        raise Rejected(404, f"unknown provider {provider[:40]!r}")
    try:
        body = await read_limited(request, handler.config.max_bytes)
    except Rejected as exc:
        handler.count_rejected(provider, exc.status)
        raise
    result = await run_in_threadpool(handler.handle, provider, dict(request.headers), body)
    if "queued" in result:
        return JSONResponse(result, status_code=202)
    return result
