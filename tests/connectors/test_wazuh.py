"""wazuh mapping: every shared sample against its golden file, vendor evidence, plus fuzzing."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector_samples import (
    as_record, check_golden, check_vendor_golden, file_lines, json_objects, mutated, outcome, sample_params,
    shared_sample,
)
from connectors import wazuh
from soc_agent.types import Severity

SAMPLES = sample_params(("wazuh", "*"))


@pytest.mark.parametrize("sample", SAMPLES)
def test_wazuh_sample_maps_to_golden(sample):
    check_golden("wazuh", sample, wazuh.to_alert)


@pytest.mark.parametrize("sample", SAMPLES)
def test_wazuh_sample_vendor_evidence_matches_golden(sample):
    check_vendor_golden("wazuh", sample, wazuh.to_alert)


@settings(max_examples=150, deadline=None)
@given(record=json_objects)
def test_wazuh_arbitrary_json_is_an_alert_or_mapping_error(record):
    outcome(wazuh.to_alert, record)
    wazuh.detect(record)


@pytest.mark.parametrize("sample", SAMPLES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_wazuh_damaged_sample_is_an_alert_or_mapping_error(sample, data):
    record = as_record(data.draw(st.sampled_from(file_lines(sample))))
    outcome(wazuh.to_alert, data.draw(mutated(record)))


# ---- vendor evidence -----------------------------------------------------------------------


def _sample(name: str) -> dict:
    return shared_sample("wazuh", name)


def test_wazuh_rule_level_is_risk_and_rule_level_with_mitre():
    alert = wazuh.to_alert(_sample("alert_5712_sshd_bruteforce_docs.json"))
    vendor = alert.vendor
    assert alert.kind == "alert" and alert.rule_id == "5712"
    assert vendor.risk_score == pytest.approx(66.667, abs=0.01)  # level 10 of 15
    assert vendor.rule_level is Severity.MEDIUM and vendor.severity is None
    assert vendor.tactics == ["credential access"] and vendor.techniques == ["T1110"]
    assert vendor.detection_source == "wazuh/sshd"
    assert vendor.verdict is None  # Wazuh states no determination of its own
    assert alert.tenant is None  # manager "centos7" is not a tenant


def test_wazuh_indexer_hit_keeps_every_tactic_and_the_decoder():
    vendor = wazuh.to_alert(_sample("alert_31166_shellshock_indexer_hit.json")).vendor
    assert vendor.risk_score == pytest.approx(40.0) and vendor.rule_level is Severity.LOW
    assert vendor.tactics == ["privilege escalation", "initial access"]
    assert vendor.techniques == ["T1068", "T1190"]
    assert vendor.detection_source == "wazuh/web-accesslog"


def test_wazuh_without_decoder_is_still_wazuh():
    record = copy.deepcopy(_sample("alert_5712_sshd_bruteforce_docs.json"))
    del record["decoder"]
    assert wazuh.to_alert(record).vendor.detection_source == "wazuh"


def test_wazuh_single_sshd_line_stays_a_raw_event():
    alert = wazuh.to_alert(_sample("alert_5710_sshd_nonexistent_user_docs.json"))
    assert alert.kind == "event" and alert.rule_id == "auth_invalid_user" and alert.severity is Severity.LOW
    assert alert.vendor.risk_score is None and alert.vendor.tactics == []


def test_wazuh_agent_tenant_label_is_the_tenant():
    record = copy.deepcopy(_sample("alert_5712_sshd_bruteforce_docs.json"))
    record["agent"]["labels"] = {"tenant": "acme"}
    assert wazuh.to_alert(record).tenant == "acme"
    event = copy.deepcopy(_sample("alert_5710_sshd_nonexistent_user_docs.json"))
    event["agent"]["labels"] = {"customer": "globex"}
    assert wazuh.to_alert(event).tenant == "globex"


@pytest.mark.parametrize("level, risk, rule_level", [
    (0, 0.0, Severity.INFORMATIONAL), (15, 100.0, Severity.CRITICAL), ("12", 80.0, Severity.HIGH),
    (99, 100.0, Severity.CRITICAL), (-3, 0.0, None), ("high", None, None), ([7], None, None),
])
def test_wazuh_odd_levels_are_clamped_or_dropped(level, risk, rule_level):
    record = copy.deepcopy(_sample("alert_5712_sshd_bruteforce_docs.json"))
    record["rule"]["level"] = level
    record["rule"]["mitre"] = {"id": ["T1110", "not-a-technique", None], "tactic": "Credential Access"}
    vendor = wazuh.to_alert(record).vendor
    assert vendor.risk_score == (pytest.approx(risk) if risk is not None else None)
    assert vendor.rule_level is rule_level
    assert vendor.techniques == ["T1110"] and vendor.tactics == ["credential access"]
