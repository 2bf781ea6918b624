"""Priors: decay, minimum sample, signed history evidence, persistence, idempotent import, tuning."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from soc_agent.learning import (
    LabelIndex,
    PriorConfig,
    PriorEvidence,
    Priors,
    learn_from_file,
    learn_from_store,
    load_learning,
    suggest_tuning,
)
from soc_agent.learning.priors import Counts
from soc_agent.store import AlertRow, Store
from soc_agent.types import Alert, Case, Entity, EntityKind
from tests.conftest import make_alert

NOW = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)


def _alert(rule: str, host: str, at: datetime = NOW, alert_id: str = "x") -> Alert:
    return Alert(id=alert_id, source="native", rule_id=rule, title=rule, timestamp=at,
                 entities=[Entity(kind=EntityKind.HOST, value=host)])


def _case(*alerts: Alert) -> Case:
    entities = list({e.key: e for a in alerts for e in a.entities}.values())
    return Case(id="c1", opened_at=NOW, updated_at=NOW, alerts=list(alerts), entities=entities,
                detections=list(dict.fromkeys(a.rule_id for a in alerts)))


def test_decay_halves_a_disposition_one_half_life_older():
    c = Counts()
    c.add("false_positive", NOW - timedelta(days=30), timedelta(days=30))
    c.add("true_positive", NOW, timedelta(days=30))
    assert c.fp == 0.5 and c.tp == 1.0 and c.n_raw == 2
    c.add("benign_positive", NOW - timedelta(days=60), timedelta(days=30))  # older than as_of: counted at 1/4
    assert c.bp == 0.25


def test_prior_is_silent_below_the_minimum_sample_and_signed_above_it():
    priors = Priors(PriorConfig(rule_min_sample=10, entity_min_sample=5))
    for i in range(9):
        priors.observe(_alert("noisy_rule", f"h{i}"), "false_positive")
    source = PriorEvidence(priors)
    assert source.evidence(_case(_alert("noisy_rule", "h0"))) == []
    priors.observe(_alert("noisy_rule", "h0"), "false_positive")
    for _ in range(12):
        priors.observe(_alert("good_rule", "victim"), "true_positive")
    noisy = PriorEvidence(priors).evidence(_case(_alert("noisy_rule", "elsewhere")))
    assert [(e.id, e.kind) for e in noisy] == [("history:rule:noisy_rule", "history")]
    assert noisy[0].weight < -1.0
    good = PriorEvidence(priors).evidence(_case(_alert("good_rule", "victim")))
    assert {e.id for e in good} == {"history:rule:good_rule", "history:entity:host:victim"}
    assert all(e.weight > 0 for e in good)


def test_a_coin_toss_rule_adds_nothing_and_weights_are_capped():
    priors = Priors(PriorConfig(rule_min_sample=4))
    for label in ("true_positive", "false_positive") * 10:
        priors.observe(_alert("coin", "h"), label)
    assert priors.weight(priors.rules["coin"]) == 0.0
    for _ in range(10_000):
        priors.rules.setdefault("sure", Counts()).add("true_positive", NOW, timedelta(days=30))
    assert priors.weight(priors.rules["sure"]) == priors.config.rule_cap


def _files(tmp_path: Path, n: int = 25) -> tuple[list[bytes], list[bytes]]:
    lines, labels = [], []
    for i in range(n):
        lines.append(make_alert("edr_heuristic_generic", [("host", f"wks-eng-0{1 + i % 3}.corp.example", "dst")],
                                alert_id=f"n{i}", severity="critical"))
        labels.append(json.dumps({"alert_id": f"n{i}", "label": "false_positive"}).encode())
    return lines, labels


def test_learning_from_a_file_persists_is_idempotent_and_feeds_load_learning(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    lines, labels = _files(tmp_path)
    for expected_new in (25, 0):
        index = LabelIndex(tmp_path / "labels.sqlite")
        index.load(labels)
        report, priors = learn_from_file(store, lines + [b"not json"], index)
        index.close()
        assert report.learned == expected_new and report.already_learned == 25 - expected_new
        assert report.skipped.counts["alert line that could not be parsed"] == 1
    assert priors.rules["edr_heuristic_generic"].n_raw == 25
    sources, calibrator = load_learning(None, store)
    assert calibrator is None and len(sources) == 1
    case = _case(_alert("edr_heuristic_generic", "wks-eng-01.corp.example"))
    items = sources[0].evidence(case)
    assert items[0].id == "history:rule:edr_heuristic_generic" and items[0].weight < 0
    store.close()


def test_dispositions_recorded_in_the_store_are_learned(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    alert = _alert("phishing_reported", "h1", alert_id="p1")
    store.session.add(AlertRow(key="native:p1", alert_id="p1", source="native", kind="alert", rule_id=alert.rule_id,
                               fingerprint="f", ts=NOW, received_at=NOW, payload=alert.model_dump_json(),
                               label="true_positive"))
    store.commit()
    report, priors = learn_from_store(store)
    assert report.learned == 1 and priors.rules["phishing_reported"].tp == 1.0
    assert learn_from_store(store)[0].learned == 0
    store.close()


def test_noisy_rules_get_a_tuning_suggestion_for_a_person(tmp_path):
    priors = Priors()
    for i in range(40):  # h0 and h1: 20 false positives each
        priors.observe(_alert("edr_heuristic_generic", f"h{i % 2}"), "false_positive")
        priors.observe(_alert("brute_force_threshold", f"g{i}"), "false_positive")
        priors.observe(_alert("malware_detected", f"m{i}"), "true_positive")
    playbooks = Path(__file__).resolve().parents[3] / "playbooks" / "detectors.yml"
    suggestions = {s.get("rule") or s.get("entity"): s for s in suggest_tuning(priors, playbooks)}
    assert suggestions["edr_heuristic_generic"]["change"]["kind"] == "suppress"
    assert suggestions["brute_force_threshold"]["change"] == {
        "kind": "raise_threshold", "file": "playbooks/detectors.yml", "set": {"count": 10}}
    assert "malware_detected" not in suggestions
    assert suggestions["host:h0"]["change"]["kind"] == "allowlist_candidate"
    assert all(s["status"] == "proposed" for s in suggestions.values())
