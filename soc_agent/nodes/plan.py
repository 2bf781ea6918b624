"""plan: the matched playbook's lowest-risk sufficient action for this verdict.

The action's target comes from the alert that triggered the run (the new
evidence) when it has an entity of the target's kind, else from the case.
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from soc_agent.actions import action_spec
from soc_agent.context import case_context, cel_context
from soc_agent.services import Services
from soc_agent.state import TriageState, step
from soc_agent.types import ProposedAction


def plan_action(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Pick the playbook and, within it, the first response whose condition holds."""
    svc = runtime.context
    case, assessment = state["case"], state["assessment"]
    ctx = cel_context(case_context(case, state["evidence"], svc.knowledge, assessment))
    playbook = svc.playbooks.match(ctx)
    if playbook is None:
        return {"incident_class": "unclassified", "playbook": None, "menu": [], "proposed": None,
                "trace": step("plan", "no playbook matches")}
    alert = state.get("alert")
    new = list(alert.entities) if alert is not None else []
    allowed = svc.playbooks.menu(playbook, ctx, case.entities, new)
    menu = [r.action for r in allowed]
    response = svc.playbooks.choose(playbook, ctx, case.entities, new)
    picked = assessment.proposed_action
    if picked is not None and picked != (response.action if response else None):
        # A model's pick counts only if the playbook allows it for this verdict now.
        chosen = next((r for r in allowed if r.action == picked), None)
        if chosen is not None:
            response = chosen
    proposed = None
    if response is not None:
        spec = action_spec(response.action)
        proposed = ProposedAction(
            name=spec.name, tier=spec.tier, capability=spec.capability,
            target=svc.playbooks.resolve_target(response, case.entities, new) if response.target else None,
            params=dict(response.params), rollback=spec.rollback, playbook=playbook.name,
        )
    note = f"playbook {playbook.name} → {proposed.name if proposed else 'nothing'}"
    if proposed and proposed.target:
        from_alert = any(e.key == proposed.target.key for e in new)
        note += f" on {proposed.target.key} ({'the new alert' if from_alert else 'the case'}'s)"
    return {"incident_class": playbook.incident_class, "playbook": playbook.name, "menu": menu,
            "proposed": proposed, "trace": step("plan", note)}
