"""assess: the deterministic risk score and the evidence behind it."""

from __future__ import annotations

from langgraph.runtime import Runtime

from soc_agent.context import case_context
from soc_agent.scoring import total_score
from soc_agent.services import Services
from soc_agent.state import TriageState, step
from soc_agent.types import Evidence


def assess_risk(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Add rule, vendor, signal, correlation and learned evidence; sum the weights."""
    svc = runtime.context
    case = state["case"]
    enrichment = state.get("evidence", [])
    ctx = case_context(case, enrichment, svc.knowledge)
    evidence = enrichment + svc.rulebook.evidence(case, ctx, svc.vendor_evidence)
    for source in svc.evidence_sources:
        try:
            evidence += source.evidence(case)
        except Exception as exc:  # a broken source degrades the evidence, never the run
            evidence.append(Evidence(id=f"degraded:{source.name}", kind="degraded", source=source.name,
                                     summary=f"evidence source {source.name} failed: {type(exc).__name__}"))
    score = total_score(evidence)
    svc.audit.append("node.assess", {"run": state["run"], "score": score,
                                     "evidence": [f"{e.id}:{e.weight:+.2f}" for e in evidence]},
                     state["case_id"], session=svc.store.session)
    return {"evidence": evidence, "score": score,
            "trace": step("assess", f"score {score:+.2f} from {len(evidence)} evidence item(s)")}
