"""A case as the graph reasons about it, read from the store: its latest distinct alerts and its entities."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func
from sqlmodel import select

from soc_agent.parsed_alerts import ParsedAlerts
from soc_agent.store import AlertRow, CaseEntityRow, CaseRow, Store
from soc_agent.types import Alert, Case, Entity, EntityKind

# A case with thousands of alerts is reasoned about from its latest ones.
_MAX_ALERTS = 100


def case_entities(store: Store, case_ids: list[str]) -> dict[str, list[Entity]]:
    """Each case's entities, in key order, in one query."""
    entities: dict[str, list[Entity]] = {case_id: [] for case_id in case_ids}
    for case_id, kind, value, role in store.session.exec(
            select(CaseEntityRow.case_id, CaseEntityRow.kind, CaseEntityRow.value, CaseEntityRow.role)
            .where(CaseEntityRow.case_id.in_(case_ids)).order_by(CaseEntityRow.case_id, CaseEntityRow.key)):
        entities[case_id].append(Entity(kind=EntityKind(kind), value=value, role=role))
    return entities


def read_cases(store: Store, case_ids: list[str], parsed: ParsedAlerts | None = None) -> dict[str, Case]:
    """Each case's distinct alerts (the latest, oldest first, capped) and entities, in three queries."""
    parsed = parsed or ParsedAlerts()
    session = store.session
    latest = (select(AlertRow.case_id, AlertRow.payload, AlertRow.ts, AlertRow.id,
                     func.row_number().over(partition_by=AlertRow.case_id,
                                            order_by=(AlertRow.ts.desc(), AlertRow.id.desc())).label("n"))
              .where(AlertRow.case_id.in_(case_ids), AlertRow.kind == "alert",
                     AlertRow.duplicate_of == None)  # noqa: E711
              .subquery())
    alerts: dict[str, list[Alert]] = defaultdict(list)
    for case_id, row_id, payload in session.exec(select(latest.c.case_id, latest.c.id, latest.c.payload)
                                                 .where(latest.c.n <= _MAX_ALERTS)
                                                 .order_by(latest.c.case_id, latest.c.ts, latest.c.id)):
        alerts[case_id].append(parsed.get(row_id, payload))
    rows = {row.id: row for row in session.exec(select(CaseRow).where(CaseRow.id.in_(case_ids)))}
    entities = case_entities(store, case_ids)
    cases = {}
    for case_id in case_ids:
        row, case_alerts = rows.get(case_id), alerts[case_id]
        cases[case_id] = Case(
            id=case_id, title=row.title if row else "",
            opened_at=row.opened_at if row else case_alerts[0].timestamp,
            updated_at=row.updated_at if row else case_alerts[-1].timestamp, alerts=case_alerts,
            duplicate_count=row.duplicate_count if row else 0, entities=entities[case_id],
            detections=list(dict.fromkeys(a.rule_id for a in case_alerts)),
        )
    return cases


def read_case(store: Store, case_id: str, parsed: ParsedAlerts | None = None) -> Case:
    """One case, as ``read_cases`` builds it."""
    return read_cases(store, [case_id], parsed)[case_id]


__all__ = ["case_entities", "read_case", "read_cases"]
