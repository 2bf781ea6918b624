"""The triage flow, wired top to bottom, as two graphs over the same nodes.

ingest → guard_replay → enrich → load_case → assess → reason → plan → guard →
act | await_approval | record_only → verify → write_notes

``build_graph()`` runs one case per invocation, with the checkpointer: it is
the graph a run pauses in (``interrupt()`` at ``await_approval``) and is
resumed in. ``build_batch_graph()`` takes many case runs through the same
node functions in one invocation, each run following the same edges; a run
the guard sends to a person stops there and is handed to its own thread of
the checkpointed graph (``hand_over``). A stream's runs go through the batch
graph because a LangGraph invocation costs more than the nodes' own work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from soc_agent.nodes.act import act_on_decision, record_only, verify_effect
from soc_agent.nodes.approval import await_approval
from soc_agent.nodes.assess import assess_risk
from soc_agent.nodes.enrich import enrich_entities, enrich_many
from soc_agent.nodes.guard import guard_action
from soc_agent.nodes.guard_replay import guard_replay
from soc_agent.nodes.ingest import ingest_alert
from soc_agent.nodes.load_case import load_case, load_cases
from soc_agent.nodes.notes import write_notes
from soc_agent.nodes.plan import plan_action
from soc_agent.nodes.reason import reason_verdict
from soc_agent.routing import route_after_approval, route_after_guard_replay, route_after_guard
from soc_agent.services import Services
from soc_agent.state import TriageState

NODES: dict[str, Callable[..., dict]] = {
    "ingest": ingest_alert, "guard_replay": guard_replay, "enrich": enrich_entities, "load_case": load_case,
    "assess": assess_risk, "reason": reason_verdict, "plan": plan_action, "guard": guard_action,
    "act": act_on_decision, "await_approval": await_approval, "record_only": record_only,
    "verify": verify_effect, "write_notes": write_notes,
}
"""Every node of the flow by name; both graphs run these same functions."""

BATCH_FORMS: dict[str, Callable[..., list[dict]]] = {"enrich": enrich_many, "load_case": load_cases}
"""Nodes that can take many runs at once (one store read for all): same updates as the node, run by run."""

_NEXT: dict[str, str | Callable[[TriageState], str]] = {
    "ingest": "guard_replay", "guard_replay": route_after_guard_replay, "enrich": "load_case", "load_case": "assess",
    "assess": "reason", "reason": "plan", "plan": "guard", "guard": route_after_guard,
    "await_approval": route_after_approval, "act": "verify", "record_only": "verify", "verify": "write_notes",
    "write_notes": END,
}
"""The flow's edges: a node name, or a router over the run's state."""

AWAITING_APPROVAL = "await_approval"
"""Where a batched run stops: from here its own checkpointed thread takes over."""


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    """The compiled one-case graph; services arrive as runtime context on each invoke."""
    graph = StateGraph(TriageState, context_schema=Services)
    for name, node in NODES.items():
        graph.add_node(name, node)
    graph.add_edge(START, "ingest")
    for name, after in _NEXT.items():
        if callable(after):
            graph.add_conditional_edges(name, after)
        else:
            graph.add_edge(name, after)
    return graph.compile(checkpointer=checkpointer)


class BatchState(TypedDict):
    """Many case runs at once: each entry is one run's ``TriageState``."""

    runs: list[dict[str, Any]]
    """The runs, in the order their alerts arrived."""
    at: list[str]
    """Per run, the node it goes to next (``__end__`` when done, ``await_approval`` when handed over)."""


# The batch graph's stages in flow order; a stage runs each run whose next node is one of its nodes.
_STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("ingest", ("ingest",)), ("guard_replay", ("guard_replay",)), ("enrich", ("enrich",)),
    ("load_case", ("load_case",)), ("assess", ("assess",)), ("reason", ("reason",)), ("plan", ("plan",)),
    ("guard", ("guard",)),
    ("respond", ("act", "record_only")), ("verify", ("verify",)), ("write_notes", ("write_notes",)),
]


def _apply(run: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A node's partial update applied as the one-case graph's channels would (``trace`` accumulates)."""
    merged = {**run, **update}
    if "trace" in update:
        merged["trace"] = run.get("trace", []) + update["trace"]
    return merged


def _next(name: str, run: dict[str, Any]) -> str:
    after = _NEXT[name]
    return after(run) if callable(after) else after


def _stage(names: tuple[str, ...]) -> Callable[[BatchState, Runtime[Services]], dict]:
    def stage(state: BatchState, runtime: Runtime[Services]) -> dict:
        runs, at = list(state["runs"]), list(state["at"])
        for name in names:
            here = [i for i, node in enumerate(at) if node == name]
            if not here:
                continue
            if name in BATCH_FORMS:
                updates = BATCH_FORMS[name]([runs[i] for i in here], runtime)
            else:
                updates = [NODES[name](runs[i], runtime) for i in here]
            for i, update in zip(here, updates):
                runs[i] = _apply(runs[i], update)
                at[i] = _next(name, runs[i])
        return {"runs": runs, "at": at}
    stage.__name__ = f"batch_{names[0]}"
    return stage


def build_batch_graph() -> CompiledStateGraph:
    """The compiled many-case graph (no checkpointer: see below); invoke with ``batch_input(runs)``.

    A completed run's record is its case row, notes and audit chain, all
    written by the nodes; its checkpoint would never be read, so none is
    written. A run that pauses is the one whose state must survive a
    restart: ``hand_over`` gives it a checkpointed thread of its own.
    """
    graph = StateGraph(BatchState, context_schema=Services)
    previous = START
    for stage_name, names in _STAGES:
        graph.add_node(stage_name, _stage(names))
        graph.add_edge(previous, stage_name)
        previous = stage_name
    graph.add_edge(previous, END)
    return graph.compile()


def batch_input(runs: list[dict[str, Any]]) -> BatchState:
    """The batch graph's input: every run starts at ingest."""
    return {"runs": runs, "at": ["ingest"] * len(runs)}


def hand_over(graph: CompiledStateGraph, run: dict[str, Any], services: Services,
              durability: str = "exit") -> dict[str, Any]:
    """Continue a batched run that needs approval in its own thread of the checkpointed ``graph``.

    The thread starts as if its guard node had just written ``run``, so the
    next step is ``await_approval`` and the run pauses there exactly as a
    one-case run would; ``Command(resume=...)`` on the thread continues it.
    """
    config = {"configurable": {"thread_id": f"{run['case_id']}:{run['run']}"}}
    graph.update_state(config, run, as_node="guard")
    return graph.invoke(None, config, context=services, durability=durability)
