"""await_approval: pause the run until a person decides.

``interrupt()`` re-runs this node from the start on resume, so it does
nothing but interrupt; the queue item was written by the guard node and the
act node checks the guard again (an approval is not a bypass).
"""

from __future__ import annotations

from langgraph.types import interrupt

from soc_agent.state import TriageState, step


def await_approval(state: TriageState) -> dict:
    """Wait for ``{"approved": bool, "by": str, "comment": str}``."""
    decision = state["decision"]
    answer = interrupt({
        "case_id": state["case_id"], "run": state["run"],
        "action": decision.action.model_dump(mode="json") if decision and decision.action else None,
        "reasons": decision.reason_lines if decision else [],
    })
    approval = answer if isinstance(answer, dict) else {"approved": False, "by": None, "comment": "malformed"}
    verb = "approved" if approval.get("approved") else "rejected"
    return {"approval": approval, "trace": step("await_approval", f"{verb} by {approval.get('by')}")}
