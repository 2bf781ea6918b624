"""guard: the policy decision point judges the proposed action.

The context is about the action's blast radius: the asset it touches and
the identity it affects, not every entity the case mentions. Blocking an
external attacker's address touches nothing of ours; isolating a host
touches that host; revoking a grant touches the user who consented.
"""

from __future__ import annotations

import json
from datetime import timedelta

from langgraph.runtime import Runtime
from pydantic import ValidationError

from soc_agent.actions import TTL_ACTIONS
from soc_agent.enrich import Asset, Identity
from soc_agent.guard import GuardContext, decide
from soc_agent.nodes.notes import persist_notes
from soc_agent.reasoner import is_benign_evidence
from soc_agent.scoring import independent_sources
from soc_agent.services import Services
from soc_agent.state import TriageState
from soc_agent.store import ApprovalRow, DecisionRow
from soc_agent.types import Case, EntityKind, Outcome, ProposedAction, Reason, RunMode, to_db_time, utcnow

# Evidence worth containment on its own: a case with any of it is never closed without a person.
_CONTAINMENT_KINDS = frozenset({"threshold", "signal"})
_AFFECTS_CASE_HOSTS = frozenset({EntityKind.PROCESS, EntityKind.FILE_HASH})
_AFFECTS_CASE_USERS = frozenset({EntityKind.EMAIL, EntityKind.CLOUD_RESOURCE, EntityKind.URL, EntityKind.DOMAIN})


def guard_context(svc: Services, state: TriageState, action: ProposedAction,
                  approved_by: str | None = None, approvers: tuple[str, ...] = ()) -> GuardContext:
    """Gather what the guard needs about this action on this case."""
    case: Case = state["case"]
    assessment = state["assessment"]
    knowledge = svc.knowledge
    target = action.target
    hosts, users = [], []
    if target is not None:
        if target.kind in (EntityKind.HOST, EntityKind.IP):
            hosts = [target]
        elif target.kind is EntityKind.USER:
            users = [target]
        elif target.kind in _AFFECTS_CASE_HOSTS:
            hosts = [e for e in case.entities if e.kind is EntityKind.HOST]
        elif target.kind in _AFFECTS_CASE_USERS:
            users = [e for e in case.entities if e.kind is EntityKind.USER]
    evidence = state.get("evidence", [])
    remote = {e.id: e for e in evidence if e.kind in ("asset", "identity")}
    tiers = [a.criticality_tier for h in hosts if (a := knowledge.asset(h) or _remote(remote, "asset", h, Asset))]
    identities = [i for u in users if (i := knowledge.identity(u) or _remote(remote, "identity", u, Identity))]
    rules = {a.rule_id for a in case.alerts}
    allow = knowledge.allowlisted(target, rules) if target is not None else None
    window = timedelta(seconds=svc.policy.block.rate_window_s)
    now = utcnow()
    while svc.block_times and now - svc.block_times[0] > window:
        svc.block_times.popleft()
    return GuardContext(
        verdict=assessment.verdict, confidence=assessment.confidence,
        asset_tier=min(tiers, default=3),
        identity_roles=frozenset(i.role for i in identities),
        privileged_identity=any(i.privileged for i in identities),
        independent_evidence=independent_sources(state["evidence"]),
        allowlisted_target=allow.reason if allow else None,
        recent_blocks=len(svc.block_times), mode=svc.mode, approved_by=approved_by,
        approvers=tuple(approvers),
        flags=frozenset(assessment.flags), responder_capabilities=svc.executor.capabilities,
        incident_class=state.get("incident_class"),
        max_severity=case.max_severity,
        intel_hit=any(e.kind == "intel" and e.weight > 0 for e in evidence),
        containment_signal=any(e.weight > 0 and (e.kind in _CONTAINMENT_KINDS or (
            e.kind == "vendor_verdict" and e.data.get("verdict") == "malicious")) for e in evidence),
        benign_evidence=any(is_benign_evidence(e) or (e.kind == "model" and e.data.get("speaks_benign")
                                                      and e.data.get("verdict") != "true_positive")
                            for e in evidence),
    )


def _remote(evidence: dict, kind: str, entity, model):
    """Asset or identity facts from a remote enricher (CMDB, Okta, Entra), when local data has none."""
    item = evidence.get(f"{kind}:{entity.key}")
    if item is None:
        return None
    try:
        return model.model_validate(item.data)
    except ValidationError:
        return None


def guard_action(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Decide allow / needs_approval / deny with reasons; queue approvals."""
    svc = runtime.context
    action = state.get("proposed")
    if action is None:
        return {"decision": None, "trace": ["guard: nothing to decide"]}
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
                            "trace": state.get("trace", []) + ["guard: needs_approval, waiting"]})
    if decision.executes and decision.action and decision.action.name in TTL_ACTIONS:
        svc.block_times.append(utcnow())  # counted when decided, so a burst cannot slip past the limit
    return {"decision": decision, "trace": [f"guard: {decision.outcome} ({decision.mode})"]}
