"""Building blocks for node unit tests: a stored case, a node called directly, the audit it wrote.

A node is ``verb_object(state, runtime)`` with the services as runtime
context. These helpers put a case in the store the way intake leaves it
(case row, alert rows, case entities), hand the node the state the graph
would, and read back what the node wrote. Upstream nodes are the real ones:
a test of ``plan`` gets its evidence and verdict from ``enrich``,
``load_case``, ``assess`` and ``reason``, not from a hand-written guess.
"""

from __future__ import annotations

import json
from typing import Any

from langgraph.runtime import Runtime

from connectors import parse_record
from soc_agent.audit import records
from soc_agent.dedupe import fingerprint
from soc_agent.graph import NODES
from soc_agent.services import Services
from soc_agent.store import AlertRow, CaseEntityRow, CaseRow
from soc_agent.types import Alert, Severity, to_db_time, utcnow

__all__ = ["audited", "call", "run_through", "stored_case"]


def stored_case(svc: Services, *lines: bytes, case_id: str = "case-1", run: int = 1,
                material: list[str] | None = None) -> dict[str, Any]:
    """Store ``lines`` (native alert lines, ``tests.conftest.make_alert``) as one open case; its run's state.

    The last line is the alert that triggered the run. Entities are stored
    once per key, as intake does; ``run`` is the run about to start (the
    case row says ``run - 1`` runs completed).
    """
    alerts: list[Alert] = [parse_record(line) for line in lines]
    now = to_db_time(utcnow())
    worst = max((a.severity for a in alerts), key=lambda s: s.rank, default=Severity.INFORMATIONAL)
    svc.store.session.add(CaseRow(id=case_id, title=alerts[-1].title, opened_at=now, updated_at=now,
                                  severity=str(worst), alert_count=len(alerts), runs=run - 1))
    seen: set[str] = set()
    for alert in alerts:
        svc.store.buffer(AlertRow, {
            "key": f"{alert.source}:{alert.id}", "alert_id": alert.id, "source": alert.source, "kind": alert.kind,
            "rule_id": alert.rule_id, "case_id": case_id, "fingerprint": fingerprint(alert), "duplicate_of": None,
            "ts": to_db_time(alert.timestamp), "received_at": now, "payload": alert.model_dump_json(),
            "label": None})
        for entity in alert.entities:
            if entity.key not in seen:
                seen.add(entity.key)
                svc.store.buffer(CaseEntityRow, {"case_id": case_id, "key": entity.key, "kind": str(entity.kind),
                                                 "value": entity.value, "role": entity.role,
                                                 "last_seen": to_db_time(alert.timestamp)})
    svc.store.session.flush()
    return {"case_id": case_id, "run": run, "alert": alerts[-1].model_copy(update={"raw": {}}),
            "material": material or ["new case"], "trace": []}


def call(node: str, state: dict[str, Any], svc: Services) -> dict[str, Any]:
    """The node's partial update for ``state`` (the node function itself, called directly)."""
    fn = NODES[node]
    return fn(state) if node == "await_approval" else fn(state, Runtime(context=svc))


def run_through(svc: Services, state: dict[str, Any], *nodes: str) -> dict[str, Any]:
    """``state`` after the real ``nodes`` in order, merged as the graph merges (``trace`` accumulates)."""
    for node in nodes:
        update = call(node, state, svc)
        state = {**state, **update, "trace": state.get("trace", []) + update.get("trace", [])}
    return state


UPSTREAM = ("ingest", "guard_replay", "enrich", "load_case", "assess", "reason", "plan", "guard")
"""The flow's nodes before the response, in order; ``UPSTREAM[:UPSTREAM.index(node)]`` prepares ``node``."""


def audited(svc: Services, case_id: str, kind: str) -> list[dict[str, Any]]:
    """The payloads of ``case_id``'s committed audit records of ``kind``, oldest first (commits first)."""
    svc.store.commit()
    return [json.loads(r.payload) for r in records(svc.store.engine, case_id) if r.kind == kind]
