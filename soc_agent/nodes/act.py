"""act and record_only: execute an allowed action, or record what would have happened."""

from __future__ import annotations

import json

from langgraph.runtime import Runtime
from pydantic import ValidationError
from sqlmodel import select

from soc_agent.actions import CATALOG
from soc_agent.guard import decide
from soc_agent.guard_context import guard_context
from soc_agent.services import Services
from soc_agent.state import TriageState, step
from soc_agent.store import ApprovalRow
from soc_agent.types import Outcome, ProposedAction, RunMode, to_db_time, utcnow


def _settle_approval(svc: Services, state: TriageState, status: str) -> None:
    approval = state.get("approval") or {}
    row = svc.store.session.exec(
        select(ApprovalRow).where(ApprovalRow.thread_id == f"{state['case_id']}:{state['run']}")
    ).first()
    if row is not None and row.status == "pending":
        row.status, row.decided_by = status, approval.get("by")
        row.comment, row.decided_at = approval.get("comment"), to_db_time(utcnow())


def _edited_action(state: TriageState, approval: dict) -> ProposedAction | None:
    """The approver's replacement action, if any and if it is on the menu; else None."""
    raw = approval.get("action")
    if not raw:
        return None
    try:
        action = ProposedAction.model_validate(raw)
    except ValidationError:
        return None
    spec = CATALOG.get(action.name)
    if spec is None or action.name not in (state.get("menu") or []):
        return None
    # The catalog, not the approver, says what the action is.
    return action.model_copy(update={"tier": spec.tier, "capability": spec.capability, "rollback": spec.rollback})


def act_on_decision(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Re-check the guard (with the approval, if any) and execute exactly once."""
    svc = runtime.context
    decision = state["decision"]
    approval = state.get("approval")
    approved_by = approval.get("by") if approval and approval.get("approved") else None
    # Everyone who approved (the queue sends them all for the two-person rule); else the one who answered.
    approvers = tuple(str(a) for a in approval.get("approvers") or ()) if approved_by else ()
    action = decision.action
    if approval is not None:
        _settle_approval(svc, state, "approved")
        if approval.get("action"):
            edited = _edited_action(state, approval)
            if edited is None:
                row = svc.executor.record(action, state["case_id"], state["run"], "denied",
                                          "the approver's replacement action is not on the case's menu")
                return {"action_id": row.id, "action_status": "denied",
                        "trace": step("act", "replacement action refused (not on the menu)")}
            action = edited
        action = action.model_copy(update={"params": {**action.params, **approval.get("params", {})}}) \
            if approval.get("params") else action
        # The act node is the authorization boundary: the approval only lifts needs_approval.
        decision = decide(action, guard_context(svc, state, action, approved_by=approved_by, approvers=approvers),
                          svc.policy)
        if not decision.executes:
            row = svc.executor.record(decision.action, state["case_id"], state["run"], "denied",
                                      "; ".join(decision.reason_lines))
            return {"decision": decision, "action_id": row.id, "action_status": "denied",
                    "trace": step("act", f"guard re-check said {decision.outcome}; not executed")}
    row = svc.executor.execute(decision.action, state["case_id"], state["run"], approved_by=approved_by)
    status = "executed" if row.status == "done" else row.status
    return {"decision": decision, "action_id": row.id, "action_status": status,
            "trace": step("act", f"{decision.action.name} {status} (action {row.id})")}


def record_only(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Shadow mode, a denial or a rejection: record the action without running it."""
    svc = runtime.context
    decision = state["decision"]
    approval = state.get("approval")
    if approval is not None and not approval.get("approved"):
        _settle_approval(svc, state, "rejected")
        status, why = "rejected", f"rejected by {approval.get('by')}: {approval.get('comment') or ''}"
    elif decision.outcome is Outcome.DENY:
        status, why = "denied", "; ".join(decision.reason_lines)
    elif decision.mode is RunMode.SHADOW:
        status = "recorded" if decision.outcome is Outcome.ALLOW else "recorded (would need approval)"
        why = "shadow mode"
    else:
        status, why = "recorded", "; ".join(decision.reason_lines)
    row = svc.executor.record(decision.action, state["case_id"], state["run"], status, why)
    return {"action_id": row.id, "action_status": status, "trace": step("record_only", status)}


def verify_effect(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Check an executed action took effect; TTL'd effects expire through the executor."""
    svc = runtime.context
    decision = state.get("decision")
    if state.get("action_status") != "executed" or decision is None or decision.action is None:
        return {"verified": None, "trace": step("verify", "nothing executed")}
    ok = svc.executor.verify(decision.action)
    svc.audit.append("node.verify", {"run": state["run"], "action_id": state.get("action_id"), "in_effect": ok,
                                     "params": json.loads(json.dumps(decision.action.params))},
                     state["case_id"], session=svc.store.session)
    ttl = decision.action.params.get("ttl_seconds")
    note = ("in effect" if ok else "NOT in effect") + (f", expires in {ttl}s" if ttl else "")
    return {"verified": ok, "trace": step("verify", note)}
