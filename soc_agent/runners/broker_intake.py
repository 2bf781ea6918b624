"""Broker mode's intake: alerts the server queues for the fleet instead of triaging them.

With ``soc-agent serve --to-broker`` the three intake endpoints (``/api/alerts``,
a ticket-created webhook, HEC) hand their alerts to :class:`BrokerIntake`,
which checks each as a worker would (dead-lettering the bad ones here) and
queues the rest on their correlation key's partition. A refusal by the broker
(a partition over its high-water mark, Redis not answering) is a
:class:`~soc_agent.runners.errors.Rejected` 429 / 503 with ``Retry-After``
(:func:`busy`; HEC's own "Server is busy", code 9, in :func:`broker_hec_router`).

What an in-process triage did right after the alert waits until a worker
has filed it: :meth:`BrokerIntake.settle` links tickets to their cases and
records who raised pending approvals (see :mod:`soc_agent.runners.server`).
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import redis
from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from sqlalchemy import bindparam, text
from sqlmodel import Session

from soc_agent.fleet.broker import Broker, BrokerConfig, Refused
from soc_agent.intake import RejectedLine
from soc_agent.runners import hec
from soc_agent.runners.api import DEAD_LETTERED
from soc_agent.runners.auth import Identity
from soc_agent.runners.errors import Rejected
from soc_agent.runners.tables import TicketLinkRow, WebhookEventRow
from soc_agent.runners.webhooks import TicketEvent, TicketPoster, WebhookConfig, WebhookHandler, alert_in
from soc_agent.store import CaseRow
from soc_agent.types import to_db_time, utcnow

if TYPE_CHECKING:  # annotations only: the server imports this module
    from soc_agent.runners.server import App

__all__ = ["OFFER_WAIT_ENV", "RETRY_AFTER_ENV", "BrokerIntake", "BrokerWebhookHandler", "Queued", "broker_hec_router",
           "busy", "server_broker"]

OFFER_WAIT_ENV = "SOC_AGENT_BROKER_OFFER_WAIT_S"
"""How long (seconds) a request waits for a full partition to drain before it is refused (default 1)."""
RETRY_AFTER_ENV = "SOC_AGENT_BROKER_RETRY_AFTER_S"
"""The ``Retry-After`` (seconds) sent with a 429 / 503 refusal (default 5)."""

log = logging.getLogger(__name__)


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
        bad: list[RejectedLine] = []
        for line, source in lines:
            # The worker's checks, so its dead letters are ours to answer; filed only once the queueing worked.
            alert = pipeline.intake.accept_line(line, source, defer=True)
            if isinstance(alert, RejectedLine):
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
            "AND queued_alert IS NOT NULL AND received_at >= :horizon ORDER BY id"),
            {"horizon": horizon}).scalars().all()
        if not rows:
            return
        session = self.state.pipeline.store.session
        events = [session.get(WebhookEventRow, event_id) for event_id in rows]
        filed = self._filed(reader, sorted({event.queued_alert for event in events}))
        for event in events:
            if event.queued_alert not in filed:
                continue
            case_id = filed[event.queued_alert]
            event.queued_alert = None  # settled: whatever the worker made of it, nothing is left to do
            if case_id is None:
                event.reason = "triaged by a worker: the alert opened no case"
                self.state.pipeline.store.commit()
                continue
            event.case_id = case_id
            if session.get(TicketLinkRow, (event.provider, event.ticket_id)) is None:
                session.add(TicketLinkRow(provider=event.provider, ticket_id=event.ticket_id, case_id=case_id,
                                          created_at=to_db_time(utcnow())))
            self.state.pipeline.store.commit()
            if event.raised_by:
                self.state.queue.raised_by(case_id, event.raised_by)
            case = session.get(CaseRow, case_id, populate_existing=True)
            self.state.poster.post_case(case_id, "note",
                                        f"triaged by a worker: verdict {case.verdict} ({case.confidence}), "
                                        f"decision {case.decision or 'none'}; status {case.status}")

    # ---- the API's answer ----------------------------------------------------------------------

    def queue_alert(self, raw: bytes, who: Identity) -> JSONResponse:
        """``POST /api/alerts`` in broker mode: 202 with where the alert was queued; ``who`` is its requester."""
        try:
            queued, _ = self.submit([(raw, f"api:{who.name}")], requester=who.name)
        except Refused as refused:
            raise busy(refused) from None
        if not queued:
            raise HTTPException(422, DEAD_LETTERED)
        return JSONResponse({"status": "queued", "queued": [asdict(q) for q in queued]}, status_code=202)


_MAX_LINKED_KEY = 1000
"""A queued alert key longer than this is not linked to its ticket (kept whole or not at all)."""


def busy(refused: Refused) -> Rejected:
    """The broker's refusal as an answer: 429 (backpressure) or 503 (unreachable), with ``Retry-After``."""
    return Rejected(429 if refused.overloaded else 503, refused.reason, refused.retry_after_s)


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
        """Queue the ticket's alert (202); :meth:`BrokerIntake.settle` links the ticket once it is filed."""
        line = alert_in(event.text)
        if line is None:
            return self._accept(provider, key, signature, event, None, "no alert in the ticket", size)
        try:
            queued, _ = self.intake.submit([(line, f"webhook:{provider}")])
        except Refused as refused:
            # Nothing accepted or recorded as processed: the provider's redelivery is handled normally.
            raise busy(refused) from None
        if not queued:
            return self._accept(provider, key, signature, event, None, "the alert was dead-lettered", size)
        item = queued[0]
        linked = len(item.alert) <= _MAX_LINKED_KEY  # never truncated: a cut key could name another alert's case
        reason = (f"queued for a worker on partition {item.partition}" if linked
                  else f"queued on partition {item.partition}; alert id too long to link the ticket")
        self._record_accepted(provider, key, signature, event, "created", None, reason, size, http_status=202,
                              queued_alert=item.alert if linked else None, raised_by=event.author[:200] or None)
        return {"status": "accepted", "kind": "created", "case_id": None, "event_id": event.event_id,
                "queued": [asdict(item)]}


def broker_hec_router(intake: BrokerIntake, token: str | None = None, max_bytes: int | None = None) -> APIRouter:
    """The HEC endpoints in broker mode: ``hec``'s token check and envelope parsing, then ``intake.submit``.

    A refusal is HEC's own "Server is busy" (code 9, 503) with ``Retry-After``:
    forwarders keep the batch and resend it.
    """

    def submit(events: list[tuple[bytes, str]]) -> dict[str, Any]:
        lines = [(line, f"hec:{sourcetype}"[:200]) for line, sourcetype in events]
        try:
            queued, dead = intake.submit(lines)
        except Refused as refused:
            raise hec.refusal(503, 9, "Server is busy", refused.retry_after_s, detail=refused.reason) from None
        return {"queued": len(queued), "dead_lettered": dead}

    return hec.hec_router(submit, token, max_bytes)


def server_broker(config: BrokerConfig | None = None) -> Broker:
    """The broker as the server uses it: a Redis timeout short enough to answer a request with 503."""
    config = config or BrokerConfig.from_env()
    client = redis.Redis.from_url(config.url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=15)
    return Broker(config, client)
