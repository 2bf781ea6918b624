"""enrich: what the organisation knows about the case's entities."""

from __future__ import annotations

from collections import defaultdict

from langgraph.runtime import Runtime
from sqlmodel import select

from soc_agent.enrich import enrich_case
from soc_agent.cases import case_entities
from soc_agent.services import Services
from soc_agent.state import TriageState, step
from soc_agent.store import AlertRow


def enrich_entities(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Run every enricher over the case's entities; failures degrade, never fail."""
    return enrich_many([state], runtime)[0]


def enrich_many(states: list[TriageState], runtime: Runtime[Services]) -> list[dict]:
    """``enrich_entities`` for many runs, with the store read once for all of them."""
    svc = runtime.context
    case_ids = [state["case_id"] for state in states]
    entities = case_entities(svc.store, case_ids)
    rules: dict[str, set[str]] = defaultdict(set)
    for case_id, rule_id in svc.store.session.exec(
            select(AlertRow.case_id, AlertRow.rule_id).distinct()
            .where(AlertRow.case_id.in_(case_ids), AlertRow.kind == "alert")):
        rules[case_id].add(rule_id)
    updates = []
    for case_id in case_ids:
        result = enrich_case(svc.enrichers, entities[case_id], frozenset(rules[case_id]),
                             svc.settings.enricher_timeout_s, svc.cache)
        note = f"{len(result.evidence)} evidence item(s)"
        if result.degraded:
            note += f", degraded: {'; '.join(result.degraded)}"
        updates.append({"evidence": result.evidence, "degraded": result.degraded, "trace": step("enrich", note)})
    return updates
