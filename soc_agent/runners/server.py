"""The FastAPI application: approval queue (JSON API and web page), ticketing webhook, metrics.

One :class:`~soc_agent.pipeline.Pipeline` per process, behind one lock (it
is single-writer); request handlers are plain functions run in the thread
pool, so they queue on the lock. Endpoints:

==========================================  =========  ==========================================
``GET  /healthz``                           none       liveness
``GET  /metrics``                           none       Prometheus text format
``GET  /api/approvals[?status=pending]``    viewer     queue items (``status=`` empty for all)
``GET  /api/approvals/{id}``                viewer     one item: case, action, blast radius, evidence
``POST /api/approvals/{id}/approve``        analyst    ``{"comment": ...}``
``POST /api/approvals/{id}/edit``           analyst    ``{"comment", "action"?, "params"?}``
``POST /api/approvals/{id}/reject``         analyst    ``{"comment": ...}``
``POST /api/approvals/expire``              lead       run expiry now (it also runs every sweep)
``GET  /api/cases/{id}``                    viewer     case, notes, evidence, comments
``POST /api/alerts``                        analyst    one alert (JSON) to triage; caller = requester
``POST /webhooks/{provider}``               vendor's   jira | servicenow | thehive, each its own (webhooks)
``POST /services/collector[/event]``        HEC token  Splunk HEC envelopes to triage (see hec)
``GET  /ui``, ``/ui/approvals/{id}``,       cookie     the web page (``soc_agent.runners.ui``: queue,
``/ui/cases/{id}`` and their forms                     items, cases; sign in at ``/ui/login``)
==========================================  =========  ==========================================

API calls carry ``Authorization: Bearer <token>``; the page keeps the token
in an HttpOnly, SameSite=Strict cookie and refuses cross-origin posts.

Every body is read through :func:`soc_agent.runners.limits.read_limited`:
its limit is enforced before reading (413 on a declared length over it, or
as soon as a chunked body passes it) and it must arrive within
``SOC_AGENT_BODY_TIMEOUT_S`` (408). Limits: the sign-in form 16 KiB, an
alert ``max_alert_bytes``, other API bodies 256 KiB, the webhook its
``max_bytes``, HEC ``SOC_AGENT_HEC_MAX_BYTES``, the edge API 1 MiB.

**Broker mode** (``soc-agent serve --to-broker``, setting ``to_broker``): the
three intake endpoints (``/api/alerts``, a ticket-created webhook, HEC) do
not triage. They check auth and signatures exactly as before, parse each
alert as a worker would (an alert that does not parse, or whose clock is
off, is dead-lettered here, exactly as in-process), and queue the rest on
the partition of their correlation key (``Broker.offer``): ``202`` with the
queued alert keys, partitions and stream entry ids (HEC keeps its ``200``
``Success``: forwarders treat anything else as a failure). A request's
alerts are queued together or not at all. When a partition's backlog stays
over the high-water mark the answer is ``429``, when Redis does not answer
``503`` (HEC: ``503`` code 9, "Server is busy"), both with ``Retry-After``
and the reason; nothing is dead-lettered or recorded as accepted then, so
the sender's retry is processed normally. Delivery is at least once: a
``503`` after a Redis timeout may follow a queued alert, and the workers'
deduper folds the re-sent copy into the first.

What an in-process triage did right after the alert (link the ticket to
its case, post the triage note to the ticket, record who raised a pending
approval so they cannot approve it themselves) waits until a worker has
filed the alert: :meth:`BrokerIntake.settle` does it on every sweep and
before every approval decision and webhook delivery. Ticket links survive a
restart (they are read back from ``webhook_events``); API requesters are
remembered in memory (bounded, 24 h).

Approval decisions are recorded here as in one process, but the paused run
is resumed by the worker that owns the case's partition: the answer is
``status`` (approved, rejected, ...) with ``resume: queued to partition N``,
and the item's ``resume`` field says which worker ran it and with what
result once it has (``soc_agent.fleet.resume``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import bindparam, text
from sqlmodel import Session

from soc_agent.config import Settings
from soc_agent.fleet.broker import Broker, BrokerConfig, Refused
from soc_agent.fleet.resume import FleetResumer
from soc_agent.intake import Rejected
from soc_agent.runners import metrics
from soc_agent.runners.approvals import ApprovalError, ApprovalQueue, QueuePolicy
from soc_agent.runners.auth import Identity, Role, TokenStore, bearer_identity
from soc_agent.runners.edge_api import edge_router
from soc_agent.runners.limits import BodyRefused, body_timeout_s, read_json_object, read_limited
from soc_agent.runners.tables import TicketLinkRow, WebhookEventRow
from soc_agent.runners.ui import router as ui_router
from soc_agent.runners.webhooks import ADAPTERS as WEBHOOK_ADAPTERS
from soc_agent.runners.webhooks import (
    LocalTicketSink,
    TicketEvent,
    TicketPoster,
    TicketSink,
    WebhookConfig,
    WebhookHandler,
    WebhookRejected,
    alert_in,
)
from soc_agent.store import CaseRow
from soc_agent.types import to_db_time, utcnow

_MAX_API_BODY = 256 * 1024
OFFER_WAIT_ENV = "SOC_AGENT_BROKER_OFFER_WAIT_S"
"""How long (seconds) a request waits for a full partition to drain before it is refused (default 1)."""
RETRY_AFTER_ENV = "SOC_AGENT_BROKER_RETRY_AFTER_S"
"""The ``Retry-After`` (seconds) sent with a 429 / 503 refusal (default 5)."""

log = logging.getLogger(__name__)


class App:
    """What the handlers share: the one pipeline, the queue, the webhook handler, the tokens.

    With a ``broker``, submitted alerts go to the fleet (``intake``) instead of the pipeline.
    """

    def __init__(self, settings: Settings, tokens: TokenStore, queue_policy: QueuePolicy,
                 webhook_config: WebhookConfig, sink: TicketSink | None, broker: Broker | None = None) -> None:
        from soc_agent.pipeline import Pipeline  # heavy: only when a server is really built

        self.settings = settings
        self.tokens = tokens
        self.lock = threading.RLock()
        # In a fleet, TTL expiry is the scheduler leader's alone (soc_agent.fleet.scheduler).
        self.pipeline = Pipeline(settings, expire_on_start=broker is None)
        # In a fleet, a decided run is resumed by the worker that owns its case, never here.
        self.queue = ApprovalQueue(self.pipeline, queue_policy, self.lock,
                                   resumer=FleetResumer(broker) if broker is not None else None)
        # The configured ticket responders post the agent's notes back (least privilege: the same
        # client that opens tickets); with none configured, posts are only recorded.
        if sink is None:
            from connectors.ticket_sink import ResponderTicketSink

            configured = ResponderTicketSink(self.pipeline.services.executor.responders)
            sink = configured if configured.providers else LocalTicketSink()
        self.sink = sink
        self.poster = TicketPoster(sink, self.pipeline.store)
        self.intake: BrokerIntake | None = None
        if broker is None:
            self.webhooks = WebhookHandler(self.queue, webhook_config, self.poster)
        else:
            self.intake = BrokerIntake(self, broker)
            self.webhooks = BrokerWebhookHandler(self.queue, webhook_config, self.poster, self.intake)

    def settle(self) -> None:
        """Broker mode: apply what queued alerts owe now that workers may have filed them."""
        if self.intake is not None:
            self.intake.settle()

    def close(self) -> None:
        """Commit and release the store and checkpointer."""
        with self.lock:
            self.pipeline.close()


# ---- broker mode ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Queued:
    """One alert the server put on the broker: how the sender can find it again."""

    alert: str
    """``source:id``, the key its row in ``alerts`` will have once a worker filed it."""
    partition: int
    entry: str
    """The stream entry id on ``<prefix>:p:<partition>``."""


class BrokerIntake:
    """Checks alerts as a worker would, dead-letters the bad ones, queues the rest; settles what they owe."""

    MAX_REQUESTERS = 10_000
    REQUESTER_TTL_S = 24 * 3600
    SETTLE_HORIZON_S = 24 * 3600

    def __init__(self, state: App, broker: Broker, wait_s: float | None = None,
                 retry_after_s: int | None = None) -> None:
        self.state = state
        self.broker = broker
        self.wait_s = wait_s if wait_s is not None else float(os.environ.get(OFFER_WAIT_ENV, 1.0))
        self.retry_after_s = retry_after_s if retry_after_s is not None else \
            int(os.environ.get(RETRY_AFTER_ENV, 5))
        # alert key -> (who submitted it, when): their pending approvals are theirs to raise, not approve.
        self._requesters: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def submit(self, lines: list[tuple[bytes, str]], requester: str | None = None) -> tuple[list[Queued], int]:
        """Queue the lines that parse; dead-letter the others (only once the queueing worked).

        Returns what was queued and how many lines were dead-lettered; raises
        :class:`~soc_agent.fleet.broker.Refused` having changed nothing.
        """
        pipeline = self.state.pipeline
        good: list[tuple[bytes, str, Any]] = []
        bad: list[Rejected] = []
        for line, source in lines:
            # The worker's checks, so its dead letters are ours to answer; filed only once the queueing worked.
            alert = pipeline.intake.accept_line(line, source, defer=True)
            if isinstance(alert, Rejected):
                bad.append(alert)
            else:
                good.append((line, source, alert))
        # Remembered before queueing: a worker may file the alert (and raise its approval) at once.
        remembered = self._remember([f"{a.source}:{a.id}" for _, _, a in good], requester) if requester else []
        try:
            published = self.broker.offer([(self.broker.partition(a), line, source) for line, source, a in good],
                                          self.wait_s, self.retry_after_s)
        except Refused:
            with self.state.lock:
                for key in remembered:
                    self._requesters.pop(key, None)
            raise
        if bad:
            with self.state.lock:
                for rejected in bad:
                    pipeline.intake.file_rejected(rejected)
                pipeline.store.commit()
        queued = [Queued(f"{alert.source}:{alert.id}", partition, entry)
                  for (_, _, alert), (partition, entry) in zip(good, published.entries)]
        return queued, len(bad)

    def _remember(self, keys: list[str], requester: str) -> list[str]:
        """Note ``requester`` for ``keys``; returns the keys that were not noted already."""
        with self.state.lock:
            new = [key for key in keys if key not in self._requesters]
            for key in keys:
                self._requesters[key] = (requester, time.monotonic())
                self._requesters.move_to_end(key)
            while len(self._requesters) > self.MAX_REQUESTERS:
                self._requesters.popitem(last=False)
        return new

    # ---- what queued alerts owe once filed -----------------------------------------------------

    def settle(self) -> None:
        """Link tickets to the cases their alerts opened and record who raised pending approvals."""
        state = self.state
        with state.lock:
            state.pipeline.store.commit()  # our own reads must see what the workers committed
            with Session(state.pipeline.store.engine) as reader:
                self._settle_requesters(reader)
                self._settle_tickets(reader)

    @staticmethod
    def _filed(reader: Session, keys: list[str]) -> dict[str, str | None]:
        """The alerts of ``keys`` a worker has filed, with the case each went to (None: no case)."""
        filed: dict[str, str | None] = {}
        for start in range(0, len(keys), 500):
            rows = reader.execute(text("SELECT key, case_id FROM alerts WHERE key IN :keys").bindparams(
                bindparam("keys", expanding=True)), {"keys": keys[start:start + 500]}).all()
            for key, case_id in rows:
                filed[key] = filed.get(key) or case_id  # a re-sent copy may have no case of its own
        return filed

    def _settle_requesters(self, reader: Session) -> None:
        if not self._requesters:
            return
        now = time.monotonic()
        filed = self._filed(reader, list(self._requesters))
        for key, (who, since) in list(self._requesters.items()):
            if key in filed:
                if filed[key]:
                    self.state.queue.raised_by(filed[key], who)
                del self._requesters[key]
            elif now - since > self.REQUESTER_TTL_S:
                del self._requesters[key]

    def _settle_tickets(self, reader: Session) -> None:
        horizon = to_db_time(utcnow() - timedelta(seconds=self.SETTLE_HORIZON_S))
        rows = reader.execute(text(
            "SELECT id FROM webhook_events WHERE outcome = 'accepted' AND kind = 'created' AND case_id IS NULL "
            "AND reason LIKE :queued AND received_at >= :horizon ORDER BY id"),
            {"queued": _QUEUED_PREFIX + "%", "horizon": horizon}).scalars().all()
        if not rows:
            return
        session = self.state.pipeline.store.session
        events = [session.get(WebhookEventRow, event_id) for event_id in rows]
        keys = {event.id: event.reason.split(_QUEUED_KEY, 1)[1] for event in events if _QUEUED_KEY in event.reason}
        filed = self._filed(reader, sorted(set(keys.values())))
        for event in events:
            key = keys.get(event.id)
            if key not in filed:
                continue
            case_id = filed[key]
            if case_id is None:
                event.reason = "triaged by a worker: the alert opened no case"
                self.state.pipeline.store.commit()
                continue
            event.case_id = case_id
            if session.get(TicketLinkRow, (event.provider, event.ticket_id)) is None:
                session.add(TicketLinkRow(provider=event.provider, ticket_id=event.ticket_id, case_id=case_id,
                                          created_at=to_db_time(utcnow())))
            self.state.pipeline.store.commit()
            author = self._ticket_author(event)
            if author:
                self.state.queue.raised_by(case_id, author)
            case = session.get(CaseRow, case_id, populate_existing=True)
            self.state.poster.post_case(case_id, "note",
                                        f"triaged by a worker: verdict {case.verdict} ({case.confidence}), "
                                        f"decision {case.decision or 'none'}; status {case.status}")

    @staticmethod
    def _ticket_author(event: WebhookEventRow) -> str:
        head = event.reason.split(_QUEUED_KEY, 1)[0]
        return head.split(_QUEUED_AUTHOR, 1)[1] if _QUEUED_AUTHOR in head else ""


_MAX_LINKED_KEY = 1000
_QUEUED_PREFIX = "queued for a worker"
_QUEUED_AUTHOR = "; raised by "
_QUEUED_KEY = "; alert "
"""``webhook_events.reason`` of a queued ticket alert: prefix, author, then the alert key (last: it is
free text from the alert, so it is parsed from the first marker on and never ends the other fields)."""


class WebhookBusy(WebhookRejected):
    """The broker refused a ticket's alert: 429 / 503 with ``Retry-After``; the provider redelivers."""

    def __init__(self, refused: Refused) -> None:
        super().__init__(429 if refused.overloaded else 503, refused.reason)
        self.retry_after_s = refused.retry_after_s


class BrokerWebhookHandler(WebhookHandler):
    """The ticketing webhook with one change: a new ticket's alert is queued, not triaged here.

    Verification, replay and idempotency checks are the base class's, unchanged.
    """

    def __init__(self, queue, config: WebhookConfig, poster: TicketPoster, intake: BrokerIntake) -> None:
        super().__init__(queue, config, poster)
        self.intake = intake

    def handle(self, provider: str, headers: dict[str, str], body: bytes, oversize: bool = False) -> dict[str, Any]:
        """As the base class, after settling queued alerts (so a disposition finds its ticket's case)."""
        try:
            self.intake.settle()
        except Exception as exc:  # noqa: BLE001 - settling is retried on the next call; this delivery goes on
            log.warning("settling queued alerts failed: %s", type(exc).__name__)
            self.pipeline.store.session.rollback()
        return super().handle(provider, headers, body, oversize)

    def _created(self, provider: str, key: str, signature: str, event: TicketEvent, size: int) -> dict[str, Any]:
        line = alert_in(event.text)
        if line is None:
            return self._accept(provider, key, signature, event, None, "no alert in the ticket", size)
        try:
            queued, _ = self.intake.submit([(line, f"webhook:{provider}")])
        except Refused as refused:
            # Nothing accepted or recorded as processed: the provider's redelivery is handled normally.
            raise WebhookBusy(refused) from None
        if not queued:
            return self._accept(provider, key, signature, event, None, "the alert was dead-lettered", size)
        item = queued[0]
        reason = f"{_QUEUED_PREFIX} on partition {item.partition}"
        if event.author and _QUEUED_KEY not in event.author:
            reason += f"{_QUEUED_AUTHOR}{event.author[:200]}"
        if len(item.alert) <= _MAX_LINKED_KEY:
            reason += f"{_QUEUED_KEY}{item.alert}"
        else:  # never truncated: a cut key could name another alert's case
            reason = f"queued on partition {item.partition}; alert id too long to link the ticket"
        self.pipeline.store.session.add(WebhookEventRow(
            provider=provider, event_key=key, signature=signature, received_at=to_db_time(utcnow()),
            http_status=202, outcome="accepted", reason=reason, kind="created", ticket_id=event.ticket_id[:200],
            case_id=None, size=size))
        try:
            self.pipeline.store.commit()
        except Exception:
            self.pipeline.store.session.rollback()
            raise WebhookRejected(409, "event or signature already accepted") from None
        return {"status": "accepted", "kind": "created", "case_id": None, "event_id": event.event_id,
                "queued": [asdict(item)]}


def _server_broker(config: BrokerConfig | None = None) -> Broker:
    """The broker as the server uses it: a Redis timeout short enough to answer a request with 503."""
    import redis

    config = config or BrokerConfig.from_env()
    client = redis.Redis.from_url(config.url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=15)
    return Broker(config, client)


def create_app(settings: Settings, *, tokens: TokenStore | None = None, queue_policy: QueuePolicy | None = None,
               webhook_config: WebhookConfig | None = None, sink: TicketSink | None = None,
               sweep_s: float | None = None, broker: Broker | None = None) -> FastAPI:
    """The application on ``settings``' store and checkpointer.

    Unset arguments come from the environment: ``SOC_AGENT_TOKENS_FILE``,
    ``SOC_AGENT_APPROVAL_*``, ``SOC_AGENT_WEBHOOK_*``, ``SOC_AGENT_APPROVAL_SWEEP_S``
    (how often expiry runs, default 30 s). With ``settings.to_broker`` (or a
    ``broker``) submitted alerts are queued for the fleet; the broker then
    comes from ``SOC_AGENT_REDIS_URL`` / ``SOC_AGENT_BROKER_*``.
    """
    if broker is None and settings.to_broker:
        broker = _server_broker()
    state = App(settings, tokens or TokenStore.from_file(os.environ.get("SOC_AGENT_TOKENS_FILE")),
                queue_policy or QueuePolicy.from_env(), webhook_config or WebhookConfig.from_env(),
                sink, broker)
    sweep = sweep_s if sweep_s is not None else float(os.environ.get("SOC_AGENT_APPROVAL_SWEEP_S", 30))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        stop = threading.Event()

        def sweeper() -> None:
            while not stop.wait(sweep):
                try:
                    state.queue.expire()
                except Exception:  # noqa: BLE001  (the next sweep tries again; errors are audited by resume)
                    pass
                try:
                    state.settle()
                except Exception as exc:  # noqa: BLE001  (the next sweep tries again)
                    log.warning("settling queued alerts failed: %s", type(exc).__name__)

        thread = threading.Thread(target=sweeper, name="approval-expiry", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)
            state.close()

    app = FastAPI(title="soc-agent", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.soc = state
    from soc_agent.runners.hec import hec_router

    app.include_router(hec_router(state) if state.intake is None else _broker_hec_router(state.intake))
    app.include_router(edge_router(state.pipeline.store.engine, state.tokens))
    app.include_router(ui_router)
    from soc_agent.runners.case_api import case_router

    app.include_router(case_router(state))

    # ---- auth -------------------------------------------------------------

    def api_identity(request: Request, role: Role) -> Identity:
        return bearer_identity(state.tokens, request.headers.get("authorization"), role)

    timeout_s = body_timeout_s()

    async def json_body(request: Request) -> dict[str, Any]:
        return await read_json_object(request, _MAX_API_BODY, timeout_s)

    def queue_call(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ApprovalError as exc:
            raise HTTPException(exc.status_code, str(exc)) from None

    # ---- plain endpoints ----------------------------------------------------

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    def metrics_endpoint(request: Request) -> Response:
        with state.lock:
            state.pipeline.store.commit()
        body, content_type = metrics.exposition(state.pipeline.store.engine, request.headers.get("accept"),
                                                webhook_rejected=state.webhooks.rejected_counts())
        return Response(body, headers={"Content-Type": content_type})

    # ---- JSON API ---------------------------------------------------------

    @app.get("/api/approvals")
    def list_approvals(request: Request, status: str | None = "pending") -> list[dict[str, Any]]:
        api_identity(request, Role.VIEWER)
        return queue_call(state.queue.list, status or None)

    @app.post("/api/approvals/expire")
    def expire_now(request: Request) -> list[dict[str, Any]]:
        api_identity(request, Role.LEAD)
        return queue_call(state.queue.expire)

    @app.get("/api/approvals/{approval_id}")
    def show_approval(approval_id: int, request: Request) -> dict[str, Any]:
        api_identity(request, Role.VIEWER)
        return queue_call(state.queue.show, approval_id)

    # Decisions check the role inside the queue so the refused attempt is audited there;
    # a viewer is still turned away with 403.
    @app.post("/api/approvals/{approval_id}/approve")
    async def approve(approval_id: int, request: Request) -> Any:
        who = api_identity(request, Role.VIEWER)
        body = await json_body(request)
        await _in_thread(state.settle)
        return await _in_thread(queue_call, state.queue.approve, approval_id, who, str(body.get("comment", "")))

    @app.post("/api/approvals/{approval_id}/reject")
    async def reject(approval_id: int, request: Request) -> Any:
        who = api_identity(request, Role.VIEWER)
        body = await json_body(request)
        await _in_thread(state.settle)
        return await _in_thread(queue_call, state.queue.reject, approval_id, who, str(body.get("comment", "")))

    @app.post("/api/approvals/{approval_id}/edit")
    async def edit(approval_id: int, request: Request) -> Any:
        who = api_identity(request, Role.VIEWER)
        body = await json_body(request)
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise HTTPException(422, "params must be an object")
        await _in_thread(state.settle)
        return await _in_thread(queue_call, state.queue.edit, approval_id, who, str(body.get("comment", "")),
                                body.get("action"), params)

    @app.get("/api/cases/{case_id}")
    def show_case(case_id: str, request: Request) -> dict[str, Any]:
        api_identity(request, Role.VIEWER)
        return queue_call(state.queue.case, case_id)

    @app.post("/api/alerts")
    async def submit_alert(request: Request) -> Any:
        who = api_identity(request, Role.ANALYST)
        raw = await read_limited(request, state.settings.max_alert_bytes, timeout_s)
        if state.intake is not None:
            return await _in_thread(queue_alert, raw, who)

        def triage() -> list[dict[str, Any]]:
            with state.lock:
                results = state.pipeline.process_line(raw, source=f"api:{who.name}")
                state.pipeline.store.commit()
                for result in results:
                    if result.status == "pending_approval" and result.case_id:
                        state.queue.raised_by(result.case_id, who.name)
                return [json.loads(r.to_json()) for r in results]

        results = await _in_thread(triage)
        if not results:
            raise HTTPException(422, "the alert was dead-lettered (see the dead_letters table)")
        return results

    def queue_alert(raw: bytes, who: Identity) -> Response:
        try:
            queued, _ = state.intake.submit([(raw, f"api:{who.name}")], requester=who.name)
        except Refused as refused:
            return busy(refused)
        if not queued:
            raise HTTPException(422, "the alert was dead-lettered (see the dead_letters table)")
        return JSONResponse({"status": "queued", "queued": [asdict(q) for q in queued]}, status_code=202)

    def busy(refused: Refused) -> JSONResponse:
        return JSONResponse({"detail": refused.reason}, status_code=429 if refused.overloaded else 503,
                            headers={"Retry-After": str(refused.retry_after_s)})

    # ---- webhook ------------------------------------------------------------

    @app.post("/webhooks/{provider}")
    async def webhook(provider: str, request: Request) -> Any:
        # Refused before a byte is read: an unknown provider, then a body over the limit or too slow.
        # Counted in /metrics, never stored (a stranger's requests must not grow the store).
        if provider not in WEBHOOK_ADAPTERS:
            state.webhooks.count_rejected(provider, 404)
            return JSONResponse({"detail": f"unknown provider {provider[:40]!r}"}, status_code=404)
        try:
            body = await read_limited(request, state.webhooks.config.max_bytes, timeout_s)
        except BodyRefused as exc:
            state.webhooks.count_rejected(provider, exc.status_code)
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        try:
            result = await _in_thread(state.webhooks.handle, provider, dict(request.headers), body)
        except WebhookRejected as exc:
            headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, WebhookBusy) else None
            return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)
        if "queued" in result:
            return JSONResponse(result, status_code=202)
        return result

    return app


def _broker_hec_router(intake: BrokerIntake, token: str | None = None, max_bytes: int | None = None) -> APIRouter:
    """The HEC endpoints in broker mode: ``hec``'s token check and envelope parsing, then ``intake.submit``.

    A refusal is HEC's own "Server is busy" (code 9, 503) with ``Retry-After``:
    forwarders keep the batch and resend it.
    """
    from starlette.concurrency import run_in_threadpool

    from soc_agent.runners import hec

    expected = token if token is not None else os.environ.get(hec.HEC_TOKEN_ENV) or None
    limit = max_bytes if max_bytes is not None else \
        int(os.environ.get(hec.HEC_MAX_BYTES_ENV) or hec._DEFAULT_MAX_BYTES)
    router = APIRouter()

    timeout_s = body_timeout_s()

    async def collect(request: Request) -> JSONResponse:
        try:
            hec._check_token(request.headers.get("authorization"), expected)  # before reading a byte of the body
            events = hec.parse_envelopes(await hec.read_body(request, limit, timeout_s))
        except hec._Refused as refused:
            return refused.response()
        lines = [(line, f"hec:{sourcetype}"[:200]) for line, sourcetype in events]
        try:
            queued, dead = await run_in_threadpool(intake.submit, lines)
        except Refused as refused:
            return JSONResponse({"text": "Server is busy", "code": 9, "detail": refused.reason}, status_code=503,
                                headers={"Retry-After": str(refused.retry_after_s)})
        return JSONResponse({"text": "Success", "code": 0, "queued": len(queued), "dead_lettered": dead})

    for path in ("/services/collector/event", "/services/collector", "/services/collector/event/1.0"):
        router.add_api_route(path, collect, methods=["POST"])

    @router.get("/services/collector/health")
    def health() -> JSONResponse:
        return JSONResponse({"text": "HEC is healthy", "code": 17})

    return router


async def _in_thread(fn, *args):
    """Run a blocking, lock-taking call off the event loop."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the application with uvicorn until interrupted (``settings.to_broker``: alerts go to the fleet)."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
