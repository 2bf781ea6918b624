"""guard_replay: the graph's replay guard; a run the case already completed is never decided twice."""

from __future__ import annotations

from sqlmodel import select

from soc_agent.graph import build_graph
from soc_agent.routing import route_after_guard_replay
from soc_agent.store import ActionRow, CaseRow, DecisionRow
from tests.conftest import make_alert
from tests.soc_agent.nodes.node_kit import call, stored_case

C2 = make_alert("connection_to_known_bad_ip",
                [("ip", "203.0.113.45", "dst"), ("host", "wks-eng-01.corp.example", "src")], alert_id="c2-1")


def test_the_first_run_of_a_new_case_goes_on(svc):
    state = stored_case(svc, C2, run=1)
    update = call("guard_replay", state, svc)
    assert update == {"replayed": False, "trace": ["guard_replay: new run"]}
    assert route_after_guard_replay({**state, **update}) == "enrich"


def test_a_run_the_case_already_completed_is_a_replay_and_ends_the_graph(svc):
    state = stored_case(svc, C2, run=1)
    svc.store.session.get(CaseRow, state["case_id"]).runs = 1  # run 1 wrote its notes
    update = call("guard_replay", state, svc)
    assert update == {"replayed": True, "trace": ["guard_replay: replay of a completed run"]}
    assert route_after_guard_replay({**state, **update}) == "__end__"


def test_an_older_run_replayed_after_a_newer_one_completed_is_a_replay_too(svc):
    state = stored_case(svc, C2, run=2)
    svc.store.session.get(CaseRow, state["case_id"]).runs = 3
    assert call("guard_replay", state, svc)["replayed"] is True


def test_the_next_run_of_a_case_with_completed_runs_goes_on(svc):
    state = stored_case(svc, C2, run=3)  # runs 1 and 2 completed
    assert svc.store.session.get(CaseRow, state["case_id"]).runs == 2
    assert call("guard_replay", state, svc)["replayed"] is False


def test_a_replayed_thread_decides_and_executes_nothing(svc):
    """Through the compiled graph: the replay stops at guard_replay, before any decision or action."""
    state = stored_case(svc, C2, run=1)
    first = build_graph().invoke(state, context=svc)
    assert first["action_status"] == "executed"
    svc.store.commit()
    assert svc.store.session.get(CaseRow, state["case_id"]).runs == 1
    decisions = len(svc.store.session.exec(select(DecisionRow)).all())

    again = build_graph().invoke(state, context=svc)
    assert again["replayed"] is True
    assert [t.split(":")[0] for t in again["trace"]] == ["ingest", "guard_replay"]
    assert "decision" not in again and "action_id" not in again
    assert len(svc.store.session.exec(select(DecisionRow)).all()) == decisions
    assert len(svc.store.session.exec(select(ActionRow)).all()) == 1
