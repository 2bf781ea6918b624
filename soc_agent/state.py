"""The graph's state: one case run, from the alert that triggered it to its notes.

Nodes return partial updates; only ``trace`` accumulates (each node appends
its name and a one-line outcome). Pydantic models live inside the state and
are checkpointed with it, so a paused run resumes with exactly what it had.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from soc_agent.types import Alert, Assessment, Case, Decision, Evidence, ProposedAction


class TriageState(TypedDict, total=False):
    """State of one case run (thread ``<case_id>:<run>``)."""

    case_id: str
    """The case this run decides."""
    run: int
    """The case's run number (1 for the run that opened it)."""
    alert: Alert
    """The alert that made this run necessary."""
    material: list[str]
    """Why a fresh run was needed (new case, new detection, new indicator...)."""
    replayed: bool
    """Set by dedupe when this exact run already completed; the graph then ends."""
    case: Case
    """The case as correlate built it: its distinct alerts and entities."""
    evidence: list[Evidence]
    """Everything the verdict may rest on: enrichment, rules, signals, thresholds."""
    degraded: list[str]
    """Enrichers that failed or timed out, with why."""
    score: float
    """The deterministic risk score (signed sum of evidence weights)."""
    assessment: Assessment
    """The verdict the reason node settled on."""
    similar: list[str]
    """This site's most similar past dispositions (``soc_agent.learning.similar``), one line each."""
    incident_class: str
    playbook: str | None
    menu: list[str]
    """Actions the matched playbook allows for this case now."""
    proposed: ProposedAction | None
    decision: Decision | None
    approval: dict[str, Any] | None
    """What the person decided when the run paused: approved, by, comment."""
    action_id: int | None
    action_status: str | None
    """executed | recorded | pending approval | denied | rejected | failed"""
    verified: bool | None
    trace: Annotated[list[str], operator.add]
    """One line per node, ``node: outcome``, each built by :func:`step`."""


def step(node: str, outcome: str) -> list[str]:
    """A node's ``trace`` update: its one line, ``node: outcome``.

    The one place the line is built; :func:`traced_nodes` is the one place it is read back.
    """
    return [f"{node}: {outcome}"]


def traced_nodes(trace: list[str]) -> list[str]:
    """The nodes a run went through, in order: each trace line up to its ``": "``."""
    return [line.partition(": ")[0] for line in trace]
