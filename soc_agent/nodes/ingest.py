"""ingest: bring the triggering alert into a case run and audit it."""

from __future__ import annotations

from langgraph.runtime import Runtime

from soc_agent.services import Services
from soc_agent.state import TriageState, step


def ingest_alert(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Record that a run of this case starts, and why."""
    alert = state["alert"]
    runtime.context.audit.append(
        "node.ingest",
        {"run": state["run"], "alert": f"{alert.source}:{alert.id}", "rule": alert.rule_id,
         "material": state.get("material", [])},
        state["case_id"], session=runtime.context.store.session,
    )
    return {"trace": step("ingest", f"{alert.rule_id} ({'; '.join(state.get('material', []))})")}
