"""assess: the deterministic risk score and the evidence behind it."""

from __future__ import annotations

from langgraph.runtime import Runtime

from soc_agent.context import case_context
from soc_agent.scoring import total_score
from soc_agent.services import Services
from soc_agent.state import TriageState


def assess_risk(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Add rule, severity, signal and correlation evidence; sum the weights."""
    svc = runtime.context
    case = state["case"]
    enrichment = state.get("evidence", [])
    ctx = case_context(case, enrichment, svc.knowledge)
    evidence = enrichment + svc.rulebook.evidence(case, ctx)
    score = total_score(evidence)
    svc.audit.append("node.assess", {"run": state["run"], "score": score,
                                     "evidence": [f"{e.id}:{e.weight:+.2f}" for e in evidence]},
                     state["case_id"], session=svc.store.session)
    return {"evidence": evidence, "score": score,
            "trace": [f"assess: score {score:+.2f} from {len(evidence)} evidence item(s)"]}
