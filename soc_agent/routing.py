"""Pure routing functions: which node runs next."""

from __future__ import annotations

from typing import Literal

from soc_agent.state import TriageState
from soc_agent.types import Outcome, RunMode


def route_after_guard_replay(state: TriageState) -> Literal["enrich", "__end__"]:
    """A replayed run ends here; anything else goes on to enrichment."""
    return "__end__" if state.get("replayed") else "enrich"


def route_after_guard(state: TriageState) -> Literal["act", "await_approval", "record_only", "write_notes"]:
    """Execute, ask a person, or only record; nothing proposed goes straight to the notes."""
    decision = state.get("decision")
    if decision is None or decision.action is None:
        return "write_notes"
    if decision.executes:
        return "act"
    if decision.outcome is Outcome.NEEDS_APPROVAL and decision.mode is RunMode.ENFORCE:
        return "await_approval"
    return "record_only"


def route_after_approval(state: TriageState) -> Literal["act", "record_only"]:
    """Approved goes to act (which re-checks the guard); rejected is recorded."""
    approval = state.get("approval") or {}
    return "act" if approval.get("approved") else "record_only"
