"""defender (MDE /api/alerts) mapping: every shared mde_* sample against its golden file, plus fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector_samples import (
    as_record, check_golden, check_vendor_golden, file_lines, json_objects, mutated, outcome, sample_params,
)
from connectors import MappingError, defender, parse_record
from soc_agent.types import Severity, VendorVerdict

SAMPLES = sample_params(("defender", "mde_*"))


@pytest.mark.parametrize("sample", SAMPLES)
def test_defender_sample_maps_to_golden(sample):
    check_golden("defender", sample, defender.to_alert)


@pytest.mark.parametrize("sample", SAMPLES)
def test_defender_sample_vendor_evidence_matches_golden(sample):
    check_vendor_golden("defender", sample, defender.to_alert)


def _mde(**fields):
    base = {"id": "da1", "title": "Suspicious process injection observed", "alertCreationTime": "2024-05-01T10:00:00Z",
            "machineId": "m1", "computerDnsName": "ws-7", "severity": "Medium", "aadTenantId": "tenant-a"}
    return defender.to_alert({**base, **fields})


def test_vendor_evidence_reads_severity_mitre_category_source_and_tenant():
    alert = _mde(category="CredentialAccess", mitreTechniques=["T1003.001", "T1003.001", "T1055"],
                 detectionSource="WindowsDefenderAtp")
    assert alert.tenant == "tenant-a"
    assert alert.vendor.severity is Severity.MEDIUM
    assert alert.vendor.tactics == ["credential access"]
    assert alert.vendor.techniques == ["T1003.001", "T1055"]
    assert alert.vendor.detection_source == "WindowsDefenderAtp"


def test_a_category_that_is_no_attack_tactic_is_not_a_tactic():
    assert _mde(category="Malware").vendor.tactics == []
    assert _mde(category="SuspiciousActivity").vendor.tactics == []


@pytest.mark.parametrize("classification, determination, verdict, wording", [
    ("TruePositive", None, VendorVerdict.MALICIOUS, "TruePositive"),
    ("TruePositive", "Malware", VendorVerdict.MALICIOUS, "TruePositive (Malware)"),
    ("FalsePositive", None, VendorVerdict.FALSE_POSITIVE, "FalsePositive"),
    ("FalsePositive", "NotMalicious", VendorVerdict.FALSE_POSITIVE, "FalsePositive (NotMalicious)"),
    ("InformationalExpectedActivity", "LineOfBusinessApplication", VendorVerdict.BENIGN,
     "InformationalExpectedActivity (LineOfBusinessApplication)"),
    # The old API's TruePositive + SecurityTesting is sanctioned testing: the determination is the finer word.
    ("TruePositive", "SecurityTesting", VendorVerdict.BENIGN, "TruePositive (SecurityTesting)"),
    # No classification: the determination alone decides.
    (None, "Phishing", VendorVerdict.MALICIOUS, "Phishing"),
    (None, "SecurityPersonnel", VendorVerdict.BENIGN, "SecurityPersonnel"),
    # A contradictory pair is never read as benign.
    ("TruePositive", "NotMalicious", VendorVerdict.MALICIOUS, "TruePositive (NotMalicious)"),
    # Absence of evidence is not benign.
    ("Unknown", "NotAvailable", None, None),
    ("FalsePositive", "Clean", VendorVerdict.FALSE_POSITIVE, "FalsePositive (Clean)"),
    (None, "Clean", None, "Clean"),
    (None, "InsufficientData", None, "InsufficientData"),
    ("Undetermined", None, None, "Undetermined"),
])
def test_classification_and_determination_give_the_vendor_verdict(classification, determination, verdict, wording):
    alert = _mde(classification=classification, determination=determination)
    assert alert.vendor.verdict == verdict
    assert alert.vendor.verdict_text == wording


def test_an_automated_investigation_found_benign_is_no_verdict():
    alert = _mde(investigationState="Benign", status="Resolved", classification=None, determination=None)
    assert alert.vendor.verdict is None and alert.vendor.verdict_text is None
    assert alert.attributes["investigation_state"] == "Benign"


def test_bad_vendor_values_are_dropped_not_fatal():
    alert = _mde(classification={"x": 1}, determination=7, category=["a"], mitreTechniques="T1059",
                 detectionSource={"a": 1}, aadTenantId=["t"], severity="extreme")
    assert alert.vendor.verdict is None and alert.vendor.tactics == [] and alert.vendor.techniques == ["T1059"]
    assert alert.vendor.severity is None and alert.vendor.detection_source is None and alert.tenant is None


def test_evidence_list_from_the_api_gives_every_item_its_entities():
    record = {"id": "da1", "title": "Suspicious PowerShell", "alertCreationTime": "2024-05-01T10:00:00Z",
              "machineId": "m1", "computerDnsName": "ws-7.corp.example", "severity": "High",
              "evidence": [{"entityType": "Process", "fileName": "powershell.exe", "processCommandLine": "ps -enc x",
                            "accountName": "jdoe"},
                           {"entityType": "Ip", "ipAddress": "203.0.113.9"},
                           {"entityType": "Url", "url": "https://evil.example/a"}]}
    alert = parse_record(json.dumps(record).encode())
    assert alert.source == "defender"
    assert [f"{e.key}|{e.role}" for e in alert.entities] == [
        "host:ws-7.corp.example|dst", "process:powershell.exe|process", "user:jdoe|actor",
        "ip:203.0.113.9|src", "url:https://evil.example/a|dst"]
    assert alert.attributes["machine_id"] == "m1" and alert.attributes["command_line"] == "ps -enc x"


def test_alert_without_creation_time_is_a_mapping_error_naming_it():
    with pytest.raises(MappingError, match="defender: MDE alert has no parseable alertCreationTime"):
        defender.to_alert({"id": "x", "title": "t", "machineId": "m", "alertCreationTime": "yesterday"})


@settings(max_examples=150, deadline=None)
@given(record=json_objects)
def test_defender_arbitrary_json_is_an_alert_or_mapping_error(record):
    outcome(defender.to_alert, record)
    defender.detect(record)


@pytest.mark.parametrize("sample", SAMPLES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_defender_damaged_sample_is_an_alert_or_mapping_error(sample, data):
    record = as_record(data.draw(st.sampled_from(file_lines(sample))))
    outcome(defender.to_alert, data.draw(mutated(record)))
