"""plan_action: the matched playbook's lowest-risk sufficient action, aimed at the new alert's entities."""

from __future__ import annotations

from soc_agent.types import Assessment, EntityKind, Tier, Verdict
from tests.conftest import make_alert
from tests.soc_agent.nodes.node_kit import UPSTREAM, call, run_through, stored_case

HOST = "wks-eng-01.corp.example"
# Both on the demo watchlists; the case keeps its entities in key order, so the first IP it lists is FIRST_IP.
FIRST_IP, SECOND_IP = "198.51.100.140", "203.0.113.45"
FIRST = make_alert("connection_to_known_bad_ip", [("ip", FIRST_IP, "dst"), ("host", HOST, "src")], alert_id="c2-1",
                   minutes_ago=20)
SECOND = make_alert("connection_to_known_bad_ip", [("ip", SECOND_IP, "dst"), ("host", HOST, "src")],
                    alert_id="c2-2", minutes_ago=5)
BEFORE = UPSTREAM[:UPSTREAM.index("plan")]


def _ready(svc, *lines):
    return run_through(svc, stored_case(svc, *lines), *BEFORE)


def test_a_confident_true_positive_gets_the_playbooks_containment_with_the_catalogs_facts(svc):
    state = _ready(svc, FIRST)
    assert state["assessment"].verdict is Verdict.TRUE_POSITIVE and state["assessment"].confidence >= 0.8
    update = call("plan", state, svc)
    proposed = update["proposed"]
    assert (update["incident_class"], update["playbook"]) == ("known_bad_ip", "known_bad_ip")
    assert proposed.name == "block_ip" and proposed.tier is Tier.CONTAIN_SOFT
    assert proposed.capability == "firewall.block" and proposed.rollback == "unblock_ip"
    assert proposed.target.kind is EntityKind.IP and proposed.target.value == FIRST_IP
    assert proposed.params == {"ttl_seconds": 86400} and proposed.playbook == "known_bad_ip"
    assert update["menu"] == ["block_ip", "open_ticket", "notify_analyst"], "close_case is not for this verdict"


def test_the_target_is_the_triggering_alerts_entity_not_the_cases_first(svc):
    update = call("plan", _ready(svc, FIRST, SECOND), svc)
    assert update["proposed"].target.value == SECOND_IP
    assert update["trace"] == [f"plan: playbook known_bad_ip → block_ip on ip:{SECOND_IP} (the new alert's)"]


def test_a_triggering_alert_without_an_entity_of_the_kind_falls_back_to_the_cases(svc):
    host_only = make_alert("connection_to_known_bad_ip", [("host", HOST, "src")], alert_id="c2-3", minutes_ago=1)
    update = call("plan", _ready(svc, FIRST, host_only), svc)
    assert update["proposed"].target.value == FIRST_IP
    assert update["trace"][0].endswith("(the case's)")


def test_a_less_sure_true_positive_gets_the_lower_risk_action(svc):
    state = _ready(svc, FIRST)
    unsure = state["assessment"].model_copy(update={"confidence": 0.7})
    update = call("plan", {**state, "assessment": unsure}, svc)
    assert update["proposed"].name == "open_ticket" and update["proposed"].tier is Tier.OBSERVE
    assert update["proposed"].target is None
    assert "block_ip" not in update["menu"]


def test_an_undetermined_case_is_routed_to_a_person_and_never_contained_or_closed(svc):
    state = _ready(svc, FIRST)
    undetermined = Assessment(verdict=Verdict.UNDETERMINED, confidence=0.5)
    update = call("plan", {**state, "assessment": undetermined}, svc)
    assert update["proposed"].name == "notify_analyst"
    assert update["menu"] == ["notify_analyst"]


def test_a_models_pick_counts_only_when_the_playbook_allows_it_now(svc):
    state = _ready(svc, FIRST)
    on_menu = state["assessment"].model_copy(update={"proposed_action": "open_ticket"})
    assert call("plan", {**state, "assessment": on_menu}, svc)["proposed"].name == "open_ticket"
    for off_menu in ("isolate_host", "close_case"):  # not in this playbook / not for a true positive
        picked = state["assessment"].model_copy(update={"proposed_action": off_menu})
        assert call("plan", {**state, "assessment": picked}, svc)["proposed"].name == "block_ip", off_menu
