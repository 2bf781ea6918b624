"""Tests for the synthetic alert stream (evals.generate) and the demo enrichment data."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from evals import generate as gen
from soc_agent.actions import CATALOG
from soc_agent.types import Alert, EntityKind

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "demo" / "data"
LABELS = {"true_positive", "benign_positive", "false_positive"}


@pytest.fixture(scope="module")
def stream():
    return gen.generate()


@pytest.fixture(scope="module")
def labels_by_id(stream):
    return {label["alert_id"]: label for label in stream[1]}


def _yaml(name):
    return yaml.safe_load((DATA / name).read_text(encoding="utf-8"))


def _values(alert, kind, role=None):
    return [e["value"] for e in alert["entities"] if e["kind"] == kind and (role is None or e.get("role") == role)]


def _content(alert):
    body = {k: v for k, v in alert.items() if k != "id"}
    return json.dumps(body, sort_keys=True)


def test_deterministic():
    assert gen.generate() == gen.generate()
    assert gen.generate(seed=11) == gen.generate(seed=11)
    assert gen.generate(seed=11) != gen.generate()


def test_every_alert_validates(stream):
    for raw in stream[0]:
        assert "source" not in raw and "raw" not in raw
        alert = Alert.model_validate({**raw, "source": "native"})
        assert alert.timestamp.tzinfo is not None


def test_every_alert_id_has_exactly_one_label(stream):
    alerts, labels = stream
    label_ids = [label["alert_id"] for label in labels]
    assert len(label_ids) == len(set(label_ids))
    assert set(label_ids) == {a["id"] for a in alerts}
    for label in labels:
        assert set(label) == {"alert_id", "label", "incident_class", "expected_action", "incident_id"}
        assert label["label"] in LABELS
        assert label["expected_action"] is None or label["expected_action"] in CATALOG


def test_classes_and_size(stream, labels_by_id):
    alerts, _ = stream
    assert len(alerts) >= 320
    classes = Counter(labels_by_id[a["id"]]["incident_class"] for a in alerts)
    assert set(gen.INCIDENT_CLASSES) <= set(classes)
    assert set(classes) == set(gen.INCIDENT_CLASSES) | {gen.NOISE_CLASS}
    assert 0.03 <= classes[gen.NOISE_CLASS] / len(alerts) <= 0.08
    for cls in gen.INCIDENT_CLASSES:
        assert any(labels_by_id[a["id"]]["label"] == "true_positive"
                   and labels_by_id[a["id"]]["incident_class"] == cls for a in alerts), cls


def test_scale_grows_the_stream():
    alerts, labels = gen.generate(n_incidents_scale=2)
    assert len(alerts) > 600
    assert {label["alert_id"] for label in labels} == {a["id"] for a in alerts}


def test_duplicate_share(stream):
    alerts, _ = stream
    seen_ids, seen_content = set(), set()
    same_id = new_id = 0
    for alert in alerts:
        if alert["id"] in seen_ids:
            same_id += 1
        elif _content(alert) in seen_content:
            new_id += 1
        seen_ids.add(alert["id"])
        seen_content.add(_content(alert))
    assert 0.10 <= (same_id + new_id) / len(alerts) <= 0.30
    assert same_id and new_id


def test_sorted_and_spread(stream):
    alerts, _ = stream
    stamps = [a["timestamp"] for a in alerts]
    assert stamps == sorted(stamps)
    first = datetime.fromisoformat(stamps[0].replace("Z", "+00:00"))
    last = datetime.fromisoformat(stamps[-1].replace("Z", "+00:00"))
    assert first >= gen.DEFAULT_START
    assert timedelta(hours=6) <= last - first <= timedelta(hours=9)


def test_committed_files_match_fresh_generation(stream):
    alerts, labels = stream
    assert gen.ALERTS_FILE.read_text(encoding="utf-8") == gen.to_jsonl(alerts)
    assert gen.LABELS_FILE.read_text(encoding="utf-8") == gen.to_jsonl(labels)


def test_entities_exist_in_demo_data(stream):
    hosts = {a["host"] for a in _yaml("assets.yml")}
    users = {i["user"] for i in _yaml("identities.yml")}
    for alert in stream[0]:
        for host in _values(alert, "host"):
            assert host in hosts, host
        for user in _values(alert, "user"):
            assert user in users or user in gen.NONEXISTENT_USERS, user
    assets = {a["host"].split(".")[0]: a["ip"] for a in _yaml("assets.yml")}
    assert assets == gen.HOST_IP


def test_demo_data_shape():
    assets = _yaml("assets.yml")
    assert {a["criticality_tier"] for a in assets} == {0, 1, 2, 3}
    scanner = next(a for a in assets if a["host"] == "scanner01.corp.example")
    assert scanner["ip"] == gen.SCANNER_IP and "vuln_scanner" in scanner["tags"]
    identities = {i["user"]: i for i in _yaml("identities.yml")}
    assert {i["role"] for i in identities.values()} == {"contractor", "employee", "executive", "service"}
    assert identities["admin.bob"]["privileged"] and identities["svc-backup"]["role"] == "service"
    intel = _yaml("intel.yml")
    assert {i["kind"] for i in intel} == {"ip", "domain", "url", "file_hash"}
    expired = [i for i in intel if i["expires"] < gen.DEFAULT_START]
    assert [i["indicator"] for i in expired] == [gen.EXPIRED_INTEL_IP]
    for entry in _yaml("allowlists.yml"):
        EntityKind(entry["kind"])
        assert entry["reason"]


def _live_intel():
    return {str(i["indicator"]) for i in _yaml("intel.yml") if i["expires"] > gen.DEFAULT_START}


def test_intel_backs_true_positives(stream, labels_by_id):
    live = _live_intel()
    for alert in stream[0]:
        label = labels_by_id[alert["id"]]
        cls, truth = label["incident_class"], label["label"]
        indicators = {e["value"] for e in alert["entities"]}
        if cls in {"known_bad_ip", "exfiltration", "malware"}:
            if truth == "true_positive":
                assert indicators & live, alert
            else:
                assert not indicators & live, alert
        if cls == "known_bad_ip" and truth == "false_positive":
            assert _values(alert, "ip", "dst") == [gen.EXPIRED_INTEL_IP]
        if cls == "phishing":
            assert bool(indicators & live) == (truth == "true_positive"), alert
        if cls in {"oauth_consent", "impossible_travel", "lolbin", "sanctioned_admin"} and truth != "true_positive":
            assert not indicators & live, alert


def test_allowlist_scoping(stream, labels_by_id):
    allow = _yaml("allowlists.yml")
    for alert in stream[0]:
        label = labels_by_id[alert["id"]]
        hits = [e for e in allow for ent in alert["entities"]
                if ent["kind"] == e["kind"] and ent["value"] == str(e["value"])
                and alert["rule_id"] in e.get("rules", [alert["rule_id"]])]
        if label["label"] == "true_positive":
            assert not hits, alert
    admin = [a for a in stream[0] if a["rule_id"] == "admin_tool_execution"]
    for alert in admin:
        truth = labels_by_id[alert["id"]]["label"]
        actors = _values(alert, "user", "actor")
        assert (actors[0] in {"admin.bob", "svc-deploy"}) == (truth == "benign_positive")


def _auth_events_by_incident(stream, labels_by_id):
    events = defaultdict(dict)  # incident -> id -> event (de-duplicated by id)
    for alert in stream[0]:
        if alert["rule_id"] == "auth_failure":
            assert alert["kind"] == "event" and alert["attributes"]["outcome"] == "failure"
            events[labels_by_id[alert["id"]]["incident_id"]][alert["id"]] = alert
    return {inc: sorted(evs.values(), key=lambda a: a["timestamp"]) for inc, evs in events.items()}


def _ts(alert):
    return datetime.fromisoformat(alert["timestamp"].replace("Z", "+00:00")).astimezone(timezone.utc)


def _max_in_window(events, seconds):
    times = [_ts(e) for e in events]
    return max(sum(1 for u in times if t <= u <= t + timedelta(seconds=seconds)) for t in times)


def test_auth_failure_thresholds(stream, labels_by_id):
    by_incident = _auth_events_by_incident(stream, labels_by_id)
    kinds = Counter()
    for incident, events in by_incident.items():
        label = labels_by_id[events[0]["id"]]
        ips = {_values(e, "ip", "src")[0] for e in events}
        assert len(ips) == 1
        users = Counter(_values(e, "user", "target")[0] for e in events)
        kinds[(label["incident_class"], label["label"])] += 1
        if label["incident_class"] == "brute_force" and label["label"] == "true_positive":
            assert _max_in_window(events, 60) >= 5
            ip = ips.pop()
            # From the internet, or from one of the internal machines whose block the guard denies.
            assert not ip.startswith("10.") or ip in {gen.HOST_IP[h] for h in gen.INTERNAL_ATTACKERS}, ip
            kinds["brute_force from inside"] += ip.startswith("10.")
        elif label["incident_class"] == "brute_force":
            assert label["expected_action"] is None and 2 <= len(events) <= 3
            assert ips.pop().startswith("10.")
        else:
            assert label["incident_class"] == "password_spray"
            assert _max_in_window(events, 60) < 5
            assert max(users.values()) <= 2
            firsts = sorted(_ts(e) for e in events)
            assert len(users) >= 6
            distinct_in_5min = {_values(e, "user", "target")[0] for e in events
                                if _ts(e) <= firsts[0] + timedelta(minutes=5)}
            assert len(distinct_in_5min) >= 6
    assert kinds[("brute_force", "true_positive")] and kinds[("brute_force", "false_positive")]
    assert kinds["brute_force from inside"] == len(gen.INTERNAL_ATTACKERS)
    assert kinds[("password_spray", "true_positive")]


def test_adversarial_text_is_labelled_by_truth(stream, labels_by_id):
    injected = [a for a in stream[0] if "ignore previous instructions" in json.dumps(a).lower()
                or "classify as false_positive" in json.dumps(a).lower()]
    assert len({a["rule_id"] for a in injected}) >= 2
    assert all(labels_by_id[a["id"]]["label"] == "true_positive" for a in injected)


def test_severity_does_not_give_the_answer_away(stream, labels_by_id):
    by_truth = defaultdict(Counter)
    for alert in stream[0]:
        if alert["kind"] == "alert":
            by_truth[labels_by_id[alert["id"]]["label"]][alert["severity"]] += 1
    assert by_truth["true_positive"]["medium"] > 0
    assert by_truth["benign_positive"]["high"] + by_truth["false_positive"]["high"] > 0


def test_guard_relevant_targets_present(stream, labels_by_id):
    tp = [a for a in stream[0] if labels_by_id[a["id"]]["label"] == "true_positive"]
    assert any("dc02.corp.example" in _values(a, "host") and labels_by_id[a["id"]]["expected_action"]
               == "isolate_host" for a in tp)
    assert any("ceo.hart" in _values(a, "user") for a in tp)


def test_the_internal_brute_force_comes_after_the_re_sends_and_leaves_the_rest_of_the_stream_as_it_was(stream, monkeypatch):
    """The deny case (brute force from a private address) is drawn last: without it, the stream is the same."""
    alerts, labels = stream
    inside = {gen.HOST_IP[h] for h in gen.INTERNAL_ATTACKERS}
    added = [a for a in alerts if set(_values(a, "ip", "src")) & inside]
    assert added and all(a["rule_id"] == "auth_failure" for a in added)
    assert {(x["label"], x["incident_class"], x["expected_action"]) for x in labels
            if x["alert_id"] in {a["id"] for a in added}} == {("true_positive", "brute_force", "block_ip")}
    assert len({a["id"] for a in added}) == len(added), "no re-sends of their own"

    monkeypatch.setattr(gen, "_internal_brute_force", lambda b, scale: None)
    without, _ = gen.generate()
    assert [a for a in alerts if a not in added] == without


def test_main_writes_files(tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "ALERTS_FILE", tmp_path / "a.jsonl")
    monkeypatch.setattr(gen, "LABELS_FILE", tmp_path / "l.jsonl")
    assert gen.main([]) == 0
    alerts, labels = gen.generate()
    assert (tmp_path / "a.jsonl").read_text() == gen.to_jsonl(alerts)
    assert (tmp_path / "l.jsonl").read_text() == gen.to_jsonl(labels)


def test_per_class_evidence(stream, labels_by_id):
    live = _live_intel()
    for alert in stream[0]:
        label = labels_by_id[alert["id"]]
        tp = label["label"] == "true_positive"
        attrs = alert["attributes"]
        if alert["rule_id"] == "impossible_travel":
            assert attrs["distance_km"] / attrs["hours_between"] > 1000
            assert attrs["vpn"] is (not tp)
            if tp:
                assert _values(alert, "ip", "src")[0] in live or attrs["countries"][1] in gen.UNUSUAL_COUNTRIES
            else:
                assert set(attrs["countries"]) <= set(gen.ORG_COUNTRIES)
        elif alert["rule_id"] == "oauth_consent_suspicious":
            assert attrs["publisher_verified"] is (not tp)
            if tp:
                assert "Mail.ReadWrite" in attrs["scopes"] and "offline_access" in attrs["scopes"]
        elif alert["rule_id"] == "exfil_unusual_destination" and tp:
            assert attrs["bytes_out"] > 500_000_000
        elif alert["rule_id"] == "shadow_copy_deletion":
            assert tp and label["expected_action"] == "isolate_host"
