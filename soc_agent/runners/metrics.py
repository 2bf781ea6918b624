"""``/metrics``: the store's counters through ``prometheus_client`` (text format 0.0.4, or OpenMetrics).

Everything is read from the store, so the numbers survive restarts and agree
with what the CLI shows; the one exception is requests refused before their
sender proved who it is (``soc_agent_webhook_rejected_total``): those are
never stored, so a stranger cannot grow the store, and are counted in
process memory instead (since the process started).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timezone

from prometheus_client import CollectorRegistry
from prometheus_client import exposition as text_format
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics import exposition as openmetrics_format
from sqlalchemy import func
from sqlmodel import Session, select

from soc_agent.runners.tables import WebhookEventRow
from soc_agent.store import ActionRow, AlertRow, ApprovalRow, CaseRow, DeadLetterRow, DecisionRow
from soc_agent.types import utcnow

CONTENT_TYPE = text_format.CONTENT_TYPE_LATEST
"""The Prometheus text format (0.0.4), served unless the scraper asks for OpenMetrics."""


def _family(kind: type, name: str, help_text: str, labels: list[str],
            samples: list[tuple[tuple, float]]) -> Metric:
    family = kind(name, help_text, labels=labels)
    for values, value in samples:
        family.add_metric([str(v) for v in values], value)
    return family


def _grouped(session: Session, *columns) -> list[tuple]:
    return list(session.exec(select(*columns, func.count()).group_by(*columns)))


class StoreCollector:
    """A ``prometheus_client`` collector that reads every figure from the store at scrape time."""

    def __init__(self, engine, llm_calls: int = 0, llm_tokens: int = 0,
                 webhook_rejected: dict[tuple[str, int], int] | None = None) -> None:
        """``webhook_rejected``: the webhook's in-memory count of refused deliveries by (provider, status)."""
        self.engine, self.llm_calls, self.llm_tokens = engine, llm_calls, llm_tokens
        self.webhook_rejected = webhook_rejected or {}

    def collect(self) -> Iterator[Metric]:
        """The families, read in one session."""
        counter, gauge = CounterMetricFamily, GaugeMetricFamily
        with Session(self.engine) as session:
            yield _family(counter, "soc_agent_alerts_ingested", "Alerts and raw events stored, by kind.", ["kind"],
                          [((k,), n) for k, n in _grouped(session, AlertRow.kind)] or [(("alert",), 0)])
            duplicates = session.exec(select(func.count()).select_from(AlertRow)
                                      .where(AlertRow.duplicate_of != None)).one()  # noqa: E711
            yield _family(counter, "soc_agent_alerts_duplicate", "Alerts suppressed as duplicates.", [],
                          [((), duplicates)])
            yield _family(gauge, "soc_agent_cases", "Cases by status.", ["status"],
                          [((s,), n) for s, n in _grouped(session, CaseRow.status)])
            yield _family(counter, "soc_agent_decisions", "Guard decisions by outcome.", ["outcome"],
                          [((o,), n) for o, n in _grouped(session, DecisionRow.outcome)])
            yield _family(counter, "soc_agent_approvals", "Approval queue items by status.", ["status"],
                          [((s,), n) for s, n in _grouped(session, ApprovalRow.status)])
            pending = list(session.exec(select(ApprovalRow.created_at).where(ApprovalRow.status == "pending")))
            now = utcnow()
            ages = [(now - (c if c.tzinfo else c.replace(tzinfo=timezone.utc))).total_seconds() for c in pending]
            yield _family(gauge, "soc_agent_approvals_pending", "Approval items waiting for a person.", [],
                          [((), len(pending))])
            yield _family(gauge, "soc_agent_approvals_pending_oldest_age_seconds",
                          "Age of the oldest pending approval item (0 when none).", [],
                          [((), round(max(ages, default=0), 3))])
            yield _family(counter, "soc_agent_actions", "Actions by tier and status.", ["tier", "status"],
                          [((t, s), n) for t, s, n in _grouped(session, ActionRow.tier, ActionRow.status)])
            yield _family(counter, "soc_agent_llm_calls", "Calls to the LLM reasoner.", [], [((), self.llm_calls)])
            yield _family(counter, "soc_agent_llm_tokens", "Tokens used by the LLM reasoner.", [],
                          [((), self.llm_tokens)])
            dead = session.exec(select(func.count()).select_from(DeadLetterRow)).one()
            yield _family(counter, "soc_agent_dead_letters", "Inputs that could not be processed.", [],
                          [((), dead)])
            yield _family(counter, "soc_agent_webhook_events", "Webhook deliveries by provider and outcome.",
                          ["provider", "outcome"],
                          [((p, o), n) for p, o, n in _grouped(session, WebhookEventRow.provider,
                                                               WebhookEventRow.outcome)])
        yield _family(counter, "soc_agent_webhook_rejected",
                      "Webhook deliveries refused (not stored), by provider and HTTP status, since the process "
                      "started.", ["provider", "status"],
                      [((p, s), n) for (p, s), n in sorted(self.webhook_rejected.items())])


def exposition(engine, accept: str | None = None, **figures) -> tuple[bytes, str]:
    """(body, content type) for a scrape: OpenMetrics when ``accept`` asks for it, else the text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(engine, **figures))
    if accept and "application/openmetrics-text" in accept:
        return openmetrics_format.generate_latest(registry), openmetrics_format.CONTENT_TYPE_LATEST
    return text_format.generate_latest(registry), CONTENT_TYPE


def render(engine, llm_calls: int = 0, llm_tokens: int = 0,
           webhook_rejected: dict[tuple[str, int], int] | None = None) -> str:
    """The text-format exposition for everything in the store behind ``engine``."""
    body, _ = exposition(engine, llm_calls=llm_calls, llm_tokens=llm_tokens, webhook_rejected=webhook_rejected)
    return body.decode()
