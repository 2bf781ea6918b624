"""sentinel mapping: every shared sample against its golden file, plus fuzzing."""

from __future__ import annotations


import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector_samples import (
    as_record, check_golden, check_vendor_golden, file_lines, json_objects, mutated, outcome, sample_params,
)
from connectors import sentinel
from soc_agent.types import Severity, VendorVerdict

SAMPLES = sample_params(("sentinel", "*"), ("defender", "graph_*"))


@pytest.mark.parametrize("sample", SAMPLES)
def test_sentinel_sample_maps_to_golden(sample):
    check_golden("sentinel", sample, sentinel.to_alert)


@pytest.mark.parametrize("sample", SAMPLES)
def test_sentinel_sample_vendor_evidence_matches_golden(sample):
    check_vendor_golden("sentinel", sample, sentinel.to_alert)


def _v2(**fields):
    base = {"@odata.type": "#microsoft.graph.security.alert", "id": "da1", "detectorId": "d1",
            "title": "Suspicious execution of hidden file", "createdDateTime": "2024-05-01T10:00:00Z",
            "severity": "high", "serviceSource": "microsoftDefenderForEndpoint", "tenantId": "tenant-g"}
    return sentinel.to_alert({**base, **fields})


def test_graph_v2_reads_severity_mitre_category_source_and_tenant():
    alert = _v2(category="DefenseEvasion", mitreTechniques=["T1564.001"], detectionSource="antivirus")
    assert alert.tenant == "tenant-g"
    assert alert.vendor.severity is Severity.HIGH
    assert alert.vendor.tactics == ["defense evasion"] and alert.vendor.techniques == ["T1564.001"]
    assert alert.vendor.detection_source == "antivirus"
    # Without a detectionSource the product that raised it is the source.
    assert _v2().vendor.detection_source == "microsoftDefenderForEndpoint"


@pytest.mark.parametrize("classification, determination, verdict, wording", [
    ("truePositive", "malware", VendorVerdict.MALICIOUS, "truePositive (malware)"),
    ("truePositive", None, VendorVerdict.MALICIOUS, "truePositive"),
    ("falsePositive", "insufficientData", VendorVerdict.FALSE_POSITIVE, "falsePositive (insufficientData)"),
    ("informationalExpectedActivity", "securityTesting", VendorVerdict.BENIGN,
     "informationalExpectedActivity (securityTesting)"),
    ("benignPositive", None, VendorVerdict.BENIGN, "benignPositive"),
    (None, "lineOfBusinessApplication", VendorVerdict.BENIGN, "lineOfBusinessApplication"),
    (None, "compromisedAccount", VendorVerdict.MALICIOUS, "compromisedAccount"),
    ("unknown", "unknown", None, None),
    ("unknownFutureValue", None, None, None),
    (None, "clean", None, "clean"),
])
def test_graph_v2_classification_and_determination(classification, determination, verdict, wording):
    alert = _v2(classification=classification, determination=determination)
    assert alert.vendor.verdict == verdict
    assert alert.vendor.verdict_text == wording


def _v1(**fields):
    base = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Security/alerts/$entity", "id": "v1",
            "title": "An active backdoor was detected", "createdDateTime": "2020-04-16T01:24:13Z",
            "severity": "medium", "azureTenantId": "tenant-v1",
            "vendorInformation": {"provider": "Microsoft Defender ATP", "subProvider": "MicrosoftDefenderATP"}}
    return sentinel.to_alert({**base, **fields})


def test_graph_v1_feedback_risk_confidence_and_tenant():
    alert = _v1(feedback="truePositive", riskScore="80", confidence=1, category="Malware")
    assert alert.tenant == "tenant-v1"
    assert alert.vendor.verdict is VendorVerdict.MALICIOUS and alert.vendor.verdict_text == "truePositive"
    # v1 confidence is 0-100: 1 is one percent, not certainty.
    assert alert.vendor.risk_score == 80 and alert.vendor.confidence == 0.01
    assert alert.vendor.tactics == [] and alert.vendor.detection_source == "MicrosoftDefenderATP"
    assert _v1(feedback="falsePositive").vendor.verdict is VendorVerdict.FALSE_POSITIVE
    assert _v1(feedback="unknown").vendor.verdict is None


def _row(**fields):
    base = {"Type": "SecurityAlert", "SystemAlertId": "a1", "AlertName": "Brute force", "AlertType": "t1",
            "AlertSeverity": "High", "TimeGenerated": "2024-09-26T05:23:30Z", "ProductName": "Azure Sentinel",
            "TenantId": "workspace-1"}
    return sentinel.to_alert({**base, **fields})


def test_security_alert_row_reads_tactics_techniques_confidence_and_tenant():
    alert = _row(Tactics="CredentialAccess, LateralMovement, PreAttack", Techniques='["T1110", "T1021"]',
                 ConfidenceScore=0.8, ConfidenceLevel="High")
    assert alert.tenant == "workspace-1"
    assert alert.vendor.severity is Severity.HIGH and alert.vendor.detection_source == "Azure Sentinel"
    assert alert.vendor.tactics == ["credential access", "lateral movement"]
    assert alert.vendor.techniques == ["T1110", "T1021"]
    assert alert.vendor.confidence == 0.8
    assert _row(ConfidenceLevel="High").vendor.confidence == 0.9
    assert _row(ConfidenceLevel="Unknown", Tactics="Unknown").vendor.confidence is None
    assert _row(Tactics="Unknown").vendor.tactics == []


_ARM_ID = ("/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws-name"
           "/providers/Microsoft.SecurityInsights/entities/a1")


def _arm(properties, **fields):
    base = {"systemAlertId": "a1", "alertDisplayName": "myAlert", "alertType": "myAlert", "severity": "Low",
            "timeGenerated": "2020-07-20T18:21:53Z", "productName": "Azure Security Center"}
    return sentinel.to_alert({"id": _ARM_ID, "kind": "SecurityAlert", "properties": {**base, **properties},
                              **fields})


def test_arm_alert_tenant_prefers_a_tenant_then_the_workspace_then_the_arm_path():
    assert _arm({"tenantId": "tenant-arm"}).tenant == "tenant-arm"
    workspace = [{"type": "LogAnalytics", "workspaceId": "ws-guid", "subscriptionId": "sub-1"}]
    assert _arm({"resourceIdentifiers": workspace}).tenant == "ws-guid"
    assert _arm({}).tenant == "sub-1/ws-name"


def test_arm_alert_reads_tactics_techniques_and_an_incident_classification():
    alert = _arm({"tactics": ["InitialAccess", "abc"], "techniques": ["T1078"], "confidenceScore": 0.4,
                  "classification": "TruePositive", "classificationReason": "SuspiciousActivity"})
    assert alert.vendor.tactics == ["initial access"] and alert.vendor.techniques == ["T1078"]
    assert alert.vendor.confidence == 0.4 and alert.vendor.detection_source == "Azure Security Center"
    assert alert.vendor.verdict is VendorVerdict.MALICIOUS
    assert alert.vendor.verdict_text == "TruePositive (SuspiciousActivity)"
    fp = _arm({"classification": "FalsePositive", "classificationReason": "InaccurateData"}).vendor
    assert fp.verdict is VendorVerdict.FALSE_POSITIVE and fp.verdict_text == "FalsePositive (InaccurateData)"
    assert _arm({"classification": "BenignPositive"}).vendor.verdict is VendorVerdict.BENIGN
    undetermined = _arm({"classification": "Undetermined"}).vendor
    assert undetermined.verdict is None and undetermined.verdict_text == "Undetermined"


def test_bad_vendor_values_are_dropped_not_fatal():
    alert = _v2(classification=["truePositive"], mitreTechniques={"a": 1}, category=5, tenantId={"x": 1},
                severity="bogus")
    assert alert.vendor.verdict is None and alert.vendor.techniques == [] and alert.vendor.tactics == []
    assert alert.tenant is None and alert.vendor.severity is None
    row = _row(ConfidenceScore="lots", Techniques="not json", TenantId=12)
    assert row.vendor.confidence is None and row.tenant == "12"


@settings(max_examples=150, deadline=None)
@given(record=json_objects)
def test_sentinel_arbitrary_json_is_an_alert_or_mapping_error(record):
    outcome(sentinel.to_alert, record)
    sentinel.detect(record)


@pytest.mark.parametrize("sample", SAMPLES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_sentinel_damaged_sample_is_an_alert_or_mapping_error(sample, data):
    record = as_record(data.draw(st.sampled_from(file_lines(sample))))
    outcome(sentinel.to_alert, data.draw(mutated(record)))
