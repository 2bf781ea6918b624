"""await_approval: the run pauses with what the person must judge, and resumes with their answer, nothing else."""

from __future__ import annotations

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from soc_agent.audit import records
from soc_agent.checkpoint import make_checkpointer
from soc_agent.nodes.approval import await_approval
from soc_agent.routing import route_after_approval
from soc_agent.state import TriageState
from soc_agent.types import Outcome
from tests.conftest import make_alert
from tests.soc_agent.nodes.node_kit import UPSTREAM, run_through, stored_case

CROWN_JEWEL = make_alert("malware_detected", [
    ("host", "dc02.corp.example", "dst"),
    ("file_hash", "c3afd733d28951f6fbffb8b0ddb87d3179c045022929dc79bd60da518f5d5524", "file")],
    alert_id="dc-1", severity="critical")
THREAD = {"configurable": {"thread_id": "case-dc:1"}}


@pytest.fixture
def approval_graph(settings):
    """The approval node alone, compiled with the project's checkpointer (its interrupt needs one)."""
    checkpointer = make_checkpointer(settings)
    graph = StateGraph(TriageState)
    graph.add_node("await_approval", await_approval)
    graph.add_edge(START, "await_approval")
    graph.add_edge("await_approval", END)
    yield graph.compile(checkpointer=checkpointer)
    checkpointer.conn.close()


@pytest.fixture
def waiting(svc):
    """A crown-jewel run the guard sent to a person, committed as the pipeline commits a paused run."""
    state = run_through(svc, stored_case(svc, CROWN_JEWEL, case_id="case-dc"), *UPSTREAM)
    assert state["decision"].outcome is Outcome.NEEDS_APPROVAL
    svc.store.commit()
    return state


def test_the_run_pauses_with_the_action_and_the_guards_reasons(approval_graph, waiting, svc):
    before = len(list(records(svc.store.engine)))
    paused = approval_graph.invoke(waiting, THREAD)
    [question] = paused["__interrupt__"]
    assert question.value == {"case_id": "case-dc", "run": 1,
                              "action": waiting["decision"].action.model_dump(mode="json"),
                              "reasons": waiting["decision"].reason_lines}
    assert "approval" not in paused
    svc.store.commit()
    assert len(list(records(svc.store.engine))) == before, "pausing writes nothing: the guard queued the item"


def test_an_approval_resumes_with_who_approved_and_goes_to_act(approval_graph, waiting):
    approval_graph.invoke(waiting, THREAD)
    answer = {"approved": True, "by": "lead.ana", "comment": "owner agrees", "approvers": ["lead.ana", "lead.di"]}
    state = approval_graph.invoke(Command(resume=answer), THREAD)
    assert state["approval"] == answer
    assert state["trace"][-1] == "await_approval: approved by lead.ana"
    assert state["decision"] == waiting["decision"], "the decision survives the checkpoint unchanged"
    assert route_after_approval(state) == "act"


def test_a_rejection_or_a_malformed_answer_goes_to_record_only(approval_graph, waiting):
    approval_graph.invoke(waiting, THREAD)
    state = approval_graph.invoke(Command(resume="yes please"), THREAD)
    assert state["approval"] == {"approved": False, "by": None, "comment": "malformed"}
    assert route_after_approval(state) == "record_only"

    other = {"configurable": {"thread_id": "case-dc:other"}}
    approval_graph.invoke(waiting, other)
    state = approval_graph.invoke(Command(resume={"approved": False, "by": "analyst.bo"}), other)
    assert state["trace"][-1] == "await_approval: rejected by analyst.bo"
    assert route_after_approval(state) == "record_only"
