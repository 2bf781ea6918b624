"""enrich: what the organisation knows about the case's entities."""

from __future__ import annotations

from langgraph.runtime import Runtime
from sqlmodel import select

from soc_agent.enrich import enrich_case
from soc_agent.services import Services
from soc_agent.state import TriageState
from soc_agent.store import AlertRow, CaseEntityRow
from soc_agent.types import Entity, EntityKind


def enrich_entities(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Run every enricher over the case's entities; failures degrade, never fail."""
    svc = runtime.context
    session = svc.store.session
    rows = session.exec(select(CaseEntityRow).where(CaseEntityRow.case_id == state["case_id"])).all()
    entities = [Entity(kind=EntityKind(r.kind), value=r.value, role=r.role) for r in rows]
    rules = frozenset(session.exec(
        select(AlertRow.rule_id).where(AlertRow.case_id == state["case_id"], AlertRow.kind == "alert")
    ).all())
    result = enrich_case(svc.enrichers, entities, rules, svc.settings.enricher_timeout_s, svc.cache)
    note = f"enrich: {len(result.evidence)} evidence item(s)"
    if result.degraded:
        note += f", degraded: {'; '.join(result.degraded)}"
    return {"evidence": result.evidence, "degraded": result.degraded, "trace": [note]}
