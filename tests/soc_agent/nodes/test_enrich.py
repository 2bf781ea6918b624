"""enrich_entities: what the site knows about every entity of the case; a failing enricher degrades, never fails."""

from __future__ import annotations

from langgraph.runtime import Runtime

from soc_agent.nodes.enrich import enrich_many
from soc_agent.types import EntityKind
from tests.conftest import make_alert
from tests.soc_agent.nodes.node_kit import call, stored_case

BAD_IP = "203.0.113.45"  # on the demo abuse feed
C2 = make_alert("connection_to_known_bad_ip", [("ip", BAD_IP, "dst"), ("host", "wks-eng-01.corp.example", "src")],
                alert_id="c2-1")
SCAN = make_alert("port_scan", [("ip", "10.0.5.20", "src"), ("host", "backup01.corp.example", "dst")],
                  alert_id="scan-1", severity="medium")


def _by_id(update: dict) -> dict:
    return {e.id: e for e in update["evidence"]}


def test_an_indicator_on_the_watchlist_is_positive_intel_evidence_about_that_entity(svc):
    update = call("enrich", stored_case(svc, C2), svc)
    intel = _by_id(update)[f"intel:ip:{BAD_IP}"]
    assert intel.kind == "intel" and intel.weight > 0 and intel.entity == f"ip:{BAD_IP}"
    asset = _by_id(update)["asset:host:wks-eng-01.corp.example"]
    assert asset.data["criticality_tier"] == 2 and asset.weight == 0, "inventory facts inform, they do not score"
    assert update["degraded"] == [] and update["trace"] == ["enrich: 2 evidence item(s)"]


def test_an_expired_indicator_is_never_a_hit(svc):
    line = make_alert("connection_to_known_bad_ip", [("ip", "192.0.2.66", "dst")], alert_id="old-1")
    evidence = call("enrich", stored_case(svc, line), svc)["evidence"]
    assert [(e.kind, e.weight < 0) for e in evidence] == [("intel_expired", True)]


def test_an_allowlist_entry_counts_only_for_the_rules_it_names(svc):
    scoped = call("enrich", stored_case(svc, SCAN, case_id="case-scan"), svc)
    assert _by_id(scoped)["allowlist:ip:10.0.5.20"].weight < 0
    other_rule = make_alert("connection_to_known_bad_ip", [("ip", "10.0.5.20", "dst")], alert_id="x-1")
    unscoped = call("enrich", stored_case(svc, other_rule, case_id="case-other"), svc)
    assert not any(e.kind == "allowlist" for e in unscoped["evidence"]), "the scanner is allowed to scan, not more"


def test_every_entity_of_the_case_is_enriched_not_only_the_triggering_alerts(svc):
    earlier = make_alert("impossible_travel", [("user", "ceo.hart", "actor"), ("ip", "198.51.100.7", "src")],
                         alert_id="it-1", minutes_ago=20)
    state = stored_case(svc, earlier, C2)
    assert "user:ceo.hart" not in {e.key for e in state["alert"].entities}
    identity = _by_id(call("enrich", state, svc))["identity:user:ceo.hart"]
    assert identity.data["role"] == "executive"


class _Broken:
    """An enricher whose backend is down."""

    name = "broken_cmdb"
    kinds = frozenset({EntityKind.HOST})
    in_memory = True

    def lookup(self, entity, rules):
        raise ConnectionError("cmdb unreachable")


def test_a_failing_enricher_degrades_the_evidence_and_the_run_goes_on(svc):
    svc.enrichers.append(_Broken())
    update = call("enrich", stored_case(svc, C2), svc)
    assert update["degraded"] == ["broken_cmdb: ConnectionError on host:wks-eng-01.corp.example"]
    degraded = [e for e in update["evidence"] if e.kind == "degraded"]
    assert len(degraded) == 1 and "broken_cmdb" in degraded[0].summary and degraded[0].weight == 0
    assert f"intel:ip:{BAD_IP}" in _by_id(update), "the other enrichers still answered"
    assert "degraded: broken_cmdb" in update["trace"][0]


def test_the_batch_form_gives_each_run_what_the_node_gives_it(svc):
    one = stored_case(svc, C2, case_id="case-c2")
    two = stored_case(svc, SCAN, case_id="case-scan")
    batch = enrich_many([one, two], Runtime(context=svc))
    assert batch == [call("enrich", one, svc), call("enrich", two, svc)]
    assert {e.id for e in batch[0]["evidence"]}.isdisjoint({e.id for e in batch[1]["evidence"]})
