"""assess_risk: the deterministic score and every piece of evidence behind it."""

from __future__ import annotations

import pytest

from soc_agent.types import Evidence
from tests.conftest import make_alert
from tests.soc_agent.nodes.node_kit import (
    UPSTREAM,
    audited,
    call,
    run_through,
    stored_case,
)

C2 = make_alert("connection_to_known_bad_ip", [("ip", "203.0.113.45", "dst"), ("host", "wks-eng-01.corp.example", "src")],
                alert_id="c2-1")
UNKNOWN = make_alert("printer_toner_low", [("host", "wks-eng-02.corp.example", "dst")], alert_id="u-1",
                     severity="informational")
BEFORE = UPSTREAM[:UPSTREAM.index("assess")]


def _ready(svc, line, case_id="case-1"):
    return run_through(svc, stored_case(svc, line, case_id=case_id), *BEFORE)


def test_the_score_is_the_signed_sum_of_the_enrichment_and_the_rule_evidence(svc):
    state = _ready(svc, C2, "case-c2")
    update = call("assess", state, svc)
    evidence = update["evidence"]
    assert evidence[:len(state["evidence"])] == state["evidence"], "enrichment is kept, first"
    kinds = {e.kind for e in evidence}
    assert {"intel", "rule"} <= kinds
    assert update["score"] == pytest.approx(sum(e.weight for e in evidence)) and update["score"] >= 2.0
    [entry] = audited(svc, "case-c2", "node.assess")
    assert entry["score"] == update["score"] and len(entry["evidence"]) == len(evidence)
    assert f"intel:ip:203.0.113.45:{evidence[0].weight:+.2f}" in entry["evidence"]


def test_an_alert_nothing_is_known_about_scores_nothing_towards_benign(svc):
    # Absence of evidence is never evidence of benign: nothing known means no negative weight at all.
    update = call("assess", _ready(svc, UNKNOWN), svc)
    assert all(e.weight >= 0 for e in update["evidence"]), [(e.id, e.weight) for e in update["evidence"]]
    assert update["score"] >= 0


class _Priors:
    """A case-level evidence source, as the learned priors are."""

    name = "priors"

    def evidence(self, case):
        return [Evidence(id="history:test", kind="history", source=self.name, summary="analysts saw this before",
                         weight=0.4)]


class _BrokenPriors:
    name = "broken_priors"

    def evidence(self, case):
        raise RuntimeError("model file unreadable")


def test_case_level_evidence_sources_are_added_and_a_broken_one_degrades(svc):
    svc.evidence_sources.extend([_BrokenPriors(), _Priors()])
    base = call("assess", _ready(svc, C2, "case-a"), svc)["score"]
    svc.evidence_sources.clear()
    without = call("assess", _ready(svc, C2, "case-b"), svc)["score"]
    assert base == pytest.approx(without + 0.4), "the working source still counted"

    svc.evidence_sources.append(_BrokenPriors())
    update = call("assess", _ready(svc, C2, "case-c"), svc)
    [degraded] = [e for e in update["evidence"] if e.kind == "degraded"]
    assert degraded.id == "degraded:broken_priors" and degraded.weight == 0
    assert "RuntimeError" in degraded.summary and "unreadable" not in degraded.summary, "no internals in notes"
    assert update["score"] == pytest.approx(without)

