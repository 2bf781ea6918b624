"""correlate: assemble the case the rest of the graph reasons about."""

from __future__ import annotations

from langgraph.runtime import Runtime
from sqlmodel import select

from soc_agent.services import Services
from soc_agent.state import TriageState
from soc_agent.store import AlertRow, CaseEntityRow, CaseRow, Store
from soc_agent.types import Alert, Case, Entity, EntityKind

# A case with thousands of alerts is reasoned about from its latest ones.
_MAX_ALERTS = 100


def load_case(store: Store, case_id: str) -> Case:
    """The case's distinct alerts (latest first, capped) and entities, from the store."""
    session = store.session
    row = session.get(CaseRow, case_id)
    alerts_rows = session.exec(
        select(AlertRow).where(AlertRow.case_id == case_id, AlertRow.kind == "alert",
                               AlertRow.duplicate_of == None)  # noqa: E711
        .order_by(AlertRow.ts.desc()).limit(_MAX_ALERTS)
    ).all()
    # The raw vendor payloads stay in the store as evidence; the run (and its checkpoint) carries
    # only the normalised fields, which is all any node reads.
    alerts = [Alert.model_validate_json(r.payload).model_copy(update={"raw": {}}) for r in reversed(alerts_rows)]
    entity_rows = session.exec(select(CaseEntityRow).where(CaseEntityRow.case_id == case_id)).all()
    entities = [Entity(kind=EntityKind(r.kind), value=r.value, role=r.role) for r in entity_rows]
    return Case(
        id=case_id, title=row.title if row else "", opened_at=row.opened_at if row else alerts[0].timestamp,
        updated_at=row.updated_at if row else alerts[-1].timestamp, alerts=alerts,
        duplicate_count=row.duplicate_count if row else 0, entities=entities,
        detections=list(dict.fromkeys(a.rule_id for a in alerts)),
    )


def correlate_case(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Load the case with every alert correlated into it so far."""
    case = load_case(runtime.context.store, state["case_id"])
    return {"case": case, "trace": [
        f"correlate: {len(case.alerts)} distinct alert(s), {len(case.entities)} entities, "
        f"{case.duplicate_count} duplicate(s)"
    ]}
