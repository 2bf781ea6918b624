"""build_graph(): the triage flow, wired top to bottom.

ingest → dedupe → enrich → correlate → assess → reason → plan → guard →
act | await_approval | record_only → verify → write_notes
"""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from soc_agent.nodes.act import act_on_decision, record_only, verify_effect
from soc_agent.nodes.approval import await_approval
from soc_agent.nodes.assess import assess_risk
from soc_agent.nodes.correlate import correlate_case
from soc_agent.nodes.dedupe import dedupe_run
from soc_agent.nodes.enrich import enrich_entities
from soc_agent.nodes.guard import guard_action
from soc_agent.nodes.ingest import ingest_alert
from soc_agent.nodes.notes import write_notes
from soc_agent.nodes.plan import plan_action
from soc_agent.nodes.reason import reason_verdict
from soc_agent.routing import route_after_approval, route_after_dedupe, route_after_guard
from soc_agent.services import Services
from soc_agent.state import TriageState


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    """The compiled triage graph; services arrive as runtime context on each invoke."""
    graph = StateGraph(TriageState, context_schema=Services)
    graph.add_node("ingest", ingest_alert)
    graph.add_node("dedupe", dedupe_run)
    graph.add_node("enrich", enrich_entities)
    graph.add_node("correlate", correlate_case)
    graph.add_node("assess", assess_risk)
    graph.add_node("reason", reason_verdict)
    graph.add_node("plan", plan_action)
    graph.add_node("guard", guard_action)
    graph.add_node("act", act_on_decision)
    graph.add_node("await_approval", await_approval)
    graph.add_node("record_only", record_only)
    graph.add_node("verify", verify_effect)
    graph.add_node("write_notes", write_notes)

    graph.add_edge(START, "ingest")
    graph.add_edge("ingest", "dedupe")
    graph.add_conditional_edges("dedupe", route_after_dedupe)
    graph.add_edge("enrich", "correlate")
    graph.add_edge("correlate", "assess")
    graph.add_edge("assess", "reason")
    graph.add_edge("reason", "plan")
    graph.add_edge("plan", "guard")
    graph.add_conditional_edges("guard", route_after_guard)
    graph.add_conditional_edges("await_approval", route_after_approval)
    graph.add_edge("act", "verify")
    graph.add_edge("record_only", "verify")
    graph.add_edge("verify", "write_notes")
    graph.add_edge("write_notes", END)
    return graph.compile(checkpointer=checkpointer)
