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
from soc_agent.state import TriageState, step
from soc_agent.types import Assessment


def _calibrated(calibrator, assessment: Assessment) -> Assessment:
    """The calibrator applied to the case and to each alert's own verdict, except where the learned model
    decided: its probabilities are calibrated already, and calibrating twice would distort them."""
    judged = dict(assessment.alert_verdicts)
    for alert_id, item in judged.items():
        if item.get("basis") != "model":
            one = calibrator(Assessment(verdict=item["verdict"], confidence=item["confidence"]))
            judged[alert_id] = {**item, "confidence": one.confidence}
    same = [j for j in assessment.alert_verdicts.values() if j["verdict"] == str(assessment.verdict)]
    if same and all(j.get("basis") == "model" for j in same):
        return assessment.model_copy(update={"alert_verdicts": judged})
    return calibrator(assessment).model_copy(update={"alert_verdicts": judged})


def reason_verdict(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Ask the reasoner; fall back to the deterministic one when its answer is not grounded."""
    svc = runtime.context
    case, evidence = state["case"], state["evidence"]
    playbook = svc.playbooks.match(case_context(case, evidence, svc.knowledge))
    menu = [r.action for r in playbook.responses] if playbook else []
    similar = [s.as_line() for s in svc.similar.for_case(case)] if svc.similar is not None else []
    data = ReasoningInput(case=case, evidence=evidence, score=state["score"], menu=menu, similar=similar)
    assessment = svc.reasoner.reason(data)
    known = {e.id for e in evidence}
    note = f"{assessment.verdict} at {assessment.confidence:.2f}"
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
        assessment = _calibrated(svc.calibrator, assessment)
        note += f"; calibrated against analysts' history → {assessment.confidence:.2f}"
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
    return {"assessment": assessment, "similar": similar, "trace": step(f"reason ({assessment.reasoner})", note)}
