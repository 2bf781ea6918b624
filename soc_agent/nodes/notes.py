"""write_notes: the case notes and the case's new status."""

from __future__ import annotations

from langgraph.runtime import Runtime

from soc_agent.case_notes import persist_notes
from soc_agent.services import Services
from soc_agent.state import TriageState, step


def write_notes(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Persist the structured notes, their markdown, and the case's verdict and status."""
    persist_notes(runtime.context, state)
    return {"trace": step("write_notes", "done")}
