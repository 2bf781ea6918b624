"""reason: the configured reasoner decides the verdict and its confidence.

The menu it is offered is what the matched playbook allows for the case;
evidence ids it cites must exist, or its answer is void and the
deterministic assessment stands.
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from soc_agent.context import case_context
from soc_agent.llm.injection import scan_case
from soc_agent.reasoner import DeterministicReasoner, ReasoningInput
from soc_agent.services import Services
from soc_agent.state import TriageState


def reason_verdict(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Ask the reasoner; fall back to the deterministic one when its answer is not grounded."""
    svc = runtime.context
    case, evidence = state["case"], state["evidence"]
    playbook = svc.playbooks.match(case_context(case, evidence, svc.knowledge))
    menu = [r.action for r in playbook.responses] if playbook else []
    data = ReasoningInput(case=case, evidence=evidence, score=state["score"], menu=menu)
    assessment = svc.reasoner.reason(data)
    known = {e.id for e in evidence}
    note = f"reason ({assessment.reasoner}): {assessment.verdict} at {assessment.confidence:.2f}"
    if not set(assessment.evidence_ids) <= known:
        bogus = sorted(set(assessment.evidence_ids) - known)[:3]
        svc.audit.append("reason.rejected", {"reasoner": assessment.reasoner, "unknown_evidence": bogus},
                         state["case_id"], session=svc.store.session)
        assessment = DeterministicReasoner().reason(data)
        note += f"; rejected (cited unknown evidence {bogus}), deterministic verdict stands"
    # The injection detector runs whatever the reasoner: the guard's "never closed as benign without a
    # person" rule must hold for the deterministic reasoner too.
    if "injection_suspected" not in assessment.flags and scan_case(case.alerts):
        assessment = assessment.model_copy(update={"flags": [*assessment.flags, "injection_suspected"]})
    if svc.calibrator is not None:
        raw = assessment.confidence
        assessment = svc.calibrator(assessment)
        note += f"; calibrated {raw:.2f} → {assessment.confidence:.2f}"
    if assessment.llm:
        note += f"; model {assessment.llm.get('model')} {assessment.llm.get('prompt_tokens', 0)}+" \
                f"{assessment.llm.get('completion_tokens', 0)} tokens in {assessment.llm.get('latency_ms')} ms"
    if assessment.flags:
        note += f"; flags: {', '.join(assessment.flags)}"
    svc.audit.append("node.reason", {"run": state["run"], "verdict": assessment.verdict,
                                     "confidence": assessment.confidence, "reasoner": assessment.reasoner,
                                     "flags": assessment.flags, "llm": assessment.llm,
                                     "proposed_action": assessment.proposed_action},
                     state["case_id"], session=svc.store.session)
    return {"assessment": assessment, "trace": [note]}
