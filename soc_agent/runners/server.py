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

Where the handlers live: the JSON API and ``/healthz``, ``/metrics`` in
:mod:`soc_agent.runners.api`, case work in :mod:`soc_agent.runners.case_api`,
the page in :mod:`soc_agent.runners.ui`, the webhook in
:mod:`soc_agent.runners.webhooks`, HEC in :mod:`soc_agent.runners.hec`, the
edge in :mod:`soc_agent.runners.edge_api`, broker mode's intake in
:mod:`soc_agent.runners.broker_intake`. This module builds the shared state
(:class:`App`, at ``app.state.soc``) and wires them together. Refusals are
answered in one place each: :class:`~soc_agent.runners.errors.Rejected`
(status, body, ``Retry-After``) and a refused queue or case operation
(:func:`~soc_agent.runners.api.approval_refused`).

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

import logging
import os
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI

from connectors.ticket_sink import ResponderTicketSink
from soc_agent.config import Settings
from soc_agent.fleet.broker import Broker
from soc_agent.fleet.resume import FleetResumer
from soc_agent.pipeline import Pipeline
from soc_agent.runners import api, case_api, errors, hec, ui, webhooks
from soc_agent.runners.approvals import ApprovalError, ApprovalQueue, QueuePolicy
from soc_agent.runners.auth import TokenStore
from soc_agent.runners.broker_intake import BrokerIntake, BrokerWebhookHandler, broker_hec_router, server_broker
from soc_agent.runners.case_actions import CaseActions
from soc_agent.runners.edge_api import edge_router
from soc_agent.runners.webhooks import LocalTicketSink, TicketPoster, TicketSink, WebhookConfig, WebhookHandler

__all__ = ["App", "create_app", "serve"]

log = logging.getLogger(__name__)


class App:
    """What the handlers share: the one pipeline, the queue, the webhook handler, the tokens.

    With a ``broker``, submitted alerts go to the fleet (``intake``) instead of the pipeline.
    """

    def __init__(self, settings: Settings, tokens: TokenStore, queue_policy: QueuePolicy,
                 webhook_config: WebhookConfig, sink: TicketSink | None, broker: Broker | None = None) -> None:
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
            configured = ResponderTicketSink(self.pipeline.services.executor.responders)
            sink = configured if configured.providers else LocalTicketSink()
        self.sink = sink
        self.poster = TicketPoster(sink, self.pipeline.store)
        self.case_actions = CaseActions(self.pipeline, self.lock, self.queue)
        """Case work by people (the case API and the page)."""
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
        broker = server_broker()
    state = App(settings, tokens or TokenStore.from_file(os.environ.get("SOC_AGENT_TOKENS_FILE")),
                queue_policy or QueuePolicy.from_env(), webhook_config or WebhookConfig.from_env(),
                sink, broker)
    sweep = sweep_s if sweep_s is not None else float(os.environ.get("SOC_AGENT_APPROVAL_SWEEP_S", 30))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        stop = threading.Event()
        thread = threading.Thread(target=_sweep, args=(state, sweep, stop), name="approval-expiry", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)
            state.close()

    app = FastAPI(title="soc-agent", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.soc = state
    errors.install(app)
    app.add_exception_handler(ApprovalError, api.approval_refused)
    app.include_router(hec.hec_router(hec.pipeline_ingest(state)) if state.intake is None
                       else broker_hec_router(state.intake))
    app.include_router(edge_router(state.pipeline.store.engine, state.tokens))
    app.include_router(ui.router)
    app.include_router(case_api.router)
    app.include_router(api.health_router)
    app.include_router(api.router)
    app.include_router(webhooks.router)
    return app


def _sweep(state: App, every_s: float, stop: threading.Event) -> None:
    """Every ``every_s`` until ``stop``: expire approvals, settle what queued alerts owe."""
    while not stop.wait(every_s):
        try:
            state.queue.expire()
        except Exception:  # noqa: BLE001  (the next sweep tries again; errors are audited by resume)
            pass
        try:
            state.settle()
        except Exception as exc:  # noqa: BLE001  (the next sweep tries again)
            log.warning("settling queued alerts failed: %s", type(exc).__name__)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the application with uvicorn until interrupted (``settings.to_broker``: alerts go to the fleet)."""
    import uvicorn  # deferred: only when serving: create_app alone (the tests) does not need it

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
