"""guard_replay: a run already completed for this case is never repeated.

Intake suppresses duplicate alerts before any run (``soc_agent.dedupe``);
this node guards the run itself, so replaying a thread after a crash or a
retried delivery ends here instead of deciding (and acting) twice.
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from soc_agent.services import Services
from soc_agent.state import TriageState, step
from soc_agent.store import CaseRow


def guard_replay(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Mark the run replayed when the case already completed this run number."""
    case = runtime.context.store.session.get(CaseRow, state["case_id"])
    replayed = case is not None and case.runs >= state["run"]
    return {"replayed": replayed,
            "trace": step("guard_replay", "replay of a completed run" if replayed else "new run")}
