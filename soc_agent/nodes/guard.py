"""guard: the policy decision point judges the proposed action.

It judges by the action's blast radius, which ``soc_agent.guard_context`` gathers.
"""

from __future__ import annotations

import json

from langgraph.runtime import Runtime

from soc_agent.actions import TTL_ACTIONS
from soc_agent.case_notes import persist_notes
from soc_agent.guard import decide
from soc_agent.guard_context import guard_context
from soc_agent.services import Services
from soc_agent.state import TriageState, step
from soc_agent.store import ApprovalRow, DecisionRow
from soc_agent.types import Outcome, Reason, RunMode, to_db_time, utcnow


def guard_action(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Decide allow / needs_approval / deny with reasons; queue approvals."""
    svc = runtime.context
    action = state.get("proposed")
    if action is None:
        return {"decision": None, "trace": step("guard", "nothing to decide")}
    decision = decide(action, guard_context(svc, state, action), svc.policy)
    alert = state.get("alert")
    if alert is not None and svc.settings.is_stale(alert.timestamp):
        # History replayed or a late delivery: judged like any alert, acted on never.
        decision = decision.model_copy(update={"mode": RunMode.SHADOW, "reasons": [
            *decision.reasons,
            Reason(Outcome.ALLOW, f"stale alert: not acted on (older than {svc.settings.oldest_alert_days} days)")]})
    now = to_db_time(utcnow())
    session = svc.store.session
    session.add(DecisionRow(
        case_id=state["case_id"], run=state["run"], action=action.name, tier=str(action.tier),
        target=action.target.key if action.target else None, outcome=str(decision.outcome),
        mode=str(decision.mode), reasons=json.dumps(decision.reason_lines), created_at=now,
    ))
    if decision.outcome is Outcome.NEEDS_APPROVAL and decision.mode is RunMode.ENFORCE:
        session.add(ApprovalRow(case_id=state["case_id"], thread_id=f"{state['case_id']}:{state['run']}",
                                action=action.name, tier=str(action.tier),
                                reasons=json.dumps(decision.reason_lines), created_at=now))
    svc.audit.append("decision", {"run": state["run"], "action": action.name, "outcome": decision.outcome,
                                  "mode": decision.mode, "reasons": decision.reason_lines},
                     state["case_id"], session=session)
    if decision.outcome is Outcome.NEEDS_APPROVAL and decision.mode is RunMode.ENFORCE:
        # The approver reads the notes before the run resumes, so they exist while it waits.
        persist_notes(svc, {**state, "decision": decision,
                            "trace": state.get("trace", []) + step("guard", "needs_approval, waiting")})
    if decision.executes and decision.action and decision.action.name in TTL_ACTIONS:
        svc.block_times.append(utcnow())  # counted when decided, so a burst cannot slip past the limit
    return {"decision": decision, "trace": step("guard", f"{decision.outcome} ({decision.mode})")}
