"""``/metrics``: the store's counters in Prometheus text format (version 0.0.4).

Everything is read from the store, so the numbers survive restarts and agree
with what the CLI shows; the one exception is requests refused before their
sender proved who it is (``soc_agent_webhook_rejected_total``): those are
never stored, so a stranger cannot grow the store, and are counted in
process memory instead (since the process started).
"""

from __future__ import annotations

from datetime import timezone

from sqlalchemy import func
from sqlmodel import Session, select

from soc_agent.runners.tables import WebhookEventRow
from soc_agent.store import ActionRow, AlertRow, ApprovalRow, CaseRow, DeadLetterRow, DecisionRow
from soc_agent.types import utcnow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help_text: str, samples: list[tuple[dict[str, object], float]]) -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for labels, value in samples:
            rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}")


def _grouped(session: Session, *columns) -> list[tuple]:
    return list(session.exec(select(*columns, func.count()).group_by(*columns)))


def render(engine, llm_calls: int = 0, llm_tokens: int = 0,
           webhook_rejected: dict[tuple[str, int], int] | None = None) -> str:
    """The exposition text for everything in the store behind ``engine``.

    ``llm_calls`` / ``llm_tokens`` come from the LLM budget once one is wired in (0 until then);
    ``webhook_rejected`` is the webhook's in-memory count of refused deliveries by (provider, status).
    """
    out = _Exposition()
    with Session(engine) as session:
        out.metric("soc_agent_alerts_ingested_total", "counter", "Alerts and raw events stored, by kind.",
                   [({"kind": k}, n) for k, n in _grouped(session, AlertRow.kind)] or [({"kind": "alert"}, 0)])
        duplicates = session.exec(select(func.count()).select_from(AlertRow)
                                  .where(AlertRow.duplicate_of != None)).one()  # noqa: E711
        out.metric("soc_agent_alerts_duplicate_total", "counter", "Alerts suppressed as duplicates.",
                   [({}, duplicates)])
        out.metric("soc_agent_cases", "gauge", "Cases by status.",
                   [({"status": s}, n) for s, n in _grouped(session, CaseRow.status)])
        out.metric("soc_agent_decisions_total", "counter", "Guard decisions by outcome.",
                   [({"outcome": o}, n) for o, n in _grouped(session, DecisionRow.outcome)])
        out.metric("soc_agent_approvals_total", "counter", "Approval queue items by status.",
                   [({"status": s}, n) for s, n in _grouped(session, ApprovalRow.status)])
        pending = list(session.exec(select(ApprovalRow.created_at).where(ApprovalRow.status == "pending")))
        now = utcnow()
        ages = [(now - (c if c.tzinfo else c.replace(tzinfo=timezone.utc))).total_seconds() for c in pending]
        out.metric("soc_agent_approvals_pending", "gauge", "Approval items waiting for a person.",
                   [({}, len(pending))])
        out.metric("soc_agent_approvals_pending_oldest_age_seconds", "gauge",
                   "Age of the oldest pending approval item (0 when none).", [({}, round(max(ages, default=0), 3))])
        out.metric("soc_agent_actions_total", "counter", "Actions by tier and status.",
                   [({"tier": t, "status": s}, n) for t, s, n in _grouped(session, ActionRow.tier, ActionRow.status)])
        out.metric("soc_agent_llm_calls_total", "counter", "Calls to the LLM reasoner.", [({}, llm_calls)])
        out.metric("soc_agent_llm_tokens_total", "counter", "Tokens used by the LLM reasoner.", [({}, llm_tokens)])
        dead = session.exec(select(func.count()).select_from(DeadLetterRow)).one()
        out.metric("soc_agent_dead_letters_total", "counter", "Inputs that could not be processed.", [({}, dead)])
        out.metric("soc_agent_webhook_events_total", "counter", "Webhook deliveries by provider and outcome.",
                   [({"provider": p, "outcome": o}, n)
                    for p, o, n in _grouped(session, WebhookEventRow.provider, WebhookEventRow.outcome)])
    out.metric("soc_agent_webhook_rejected_total", "counter",
               "Webhook deliveries refused (not stored), by provider and HTTP status, since the process started.",
               [({"provider": p, "status": s}, n) for (p, s), n in sorted((webhook_rejected or {}).items())])
    return "\n".join(out.lines) + "\n"
