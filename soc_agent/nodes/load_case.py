"""load_case: assemble the case the rest of the graph reasons about, with every alert correlated into it so far.

Intake (``soc_agent.correlate``) decided which case each alert joins; this
node only reads that case back from the store.
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from soc_agent.cases import read_case, read_cases
from soc_agent.services import Services
from soc_agent.state import TriageState, step
from soc_agent.types import Case


def _update(case: Case) -> dict:
    return {"case": case, "trace": step(
        "load_case", f"{len(case.alerts)} distinct alert(s), {len(case.entities)} entities, "
        f"{case.duplicate_count} duplicate(s)")}


def load_case(state: TriageState, runtime: Runtime[Services]) -> dict:
    """Load the case with every alert correlated into it so far."""
    return _update(read_case(runtime.context.store, state["case_id"], runtime.context.parsed_alerts))


def load_cases(states: list[TriageState], runtime: Runtime[Services]) -> list[dict]:
    """``load_case`` for many runs, with the store read once for all of them."""
    cases = read_cases(runtime.context.store, [state["case_id"] for state in states], runtime.context.parsed_alerts)
    return [_update(cases[state["case_id"]]) for state in states]
