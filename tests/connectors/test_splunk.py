"""splunk mapping: every shared sample against its golden file, vendor evidence, plus fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector_samples import (
    as_record, check_golden, check_vendor_golden, file_lines, json_objects, mutated, outcome, sample_params,
    shared_sample,
)
from connectors import splunk
from soc_agent.types import Severity, VendorVerdict

SAMPLES = sample_params(("splunk", "*"))


@pytest.mark.parametrize("sample", SAMPLES)
def test_splunk_sample_maps_to_golden(sample):
    check_golden("splunk", sample, splunk.to_alert)


@pytest.mark.parametrize("sample", SAMPLES)
def test_splunk_sample_vendor_evidence_matches_golden(sample):
    check_vendor_golden("splunk", sample, splunk.to_alert)


@settings(max_examples=150, deadline=None)
@given(record=json_objects)
def test_splunk_arbitrary_json_is_an_alert_or_mapping_error(record):
    outcome(splunk.to_alert, record)
    splunk.detect(record)


@pytest.mark.parametrize("sample", SAMPLES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_splunk_damaged_sample_is_an_alert_or_mapping_error(sample, data):
    record = as_record(data.draw(st.sampled_from(file_lines(sample))))
    outcome(splunk.to_alert, data.draw(mutated(record)))


# ---- vendor evidence -----------------------------------------------------------------------


def _sample(name: str) -> dict:
    return shared_sample("splunk", name)


def test_splunk_undetermined_new_notable_has_no_verdict():
    alert = splunk.to_alert(_sample("notable_identity_root_success_full.json"))
    vendor = alert.vendor
    assert vendor.verdict is None and vendor.verdict_text == "Undetermined"  # disposition:6
    assert vendor.severity is Severity.INFORMATIONAL and vendor.rule_level is Severity.INFORMATIONAL
    assert vendor.detection_source == "identity"
    assert vendor.risk_score is None  # "xx"
    assert alert.tenant is None


def test_splunk_urgency_is_the_severity_and_a_running_risk_total_is_not_a_risk_score():
    vendor = splunk.to_alert(_sample("notable_endpoint_recurring_malware_1.json")).vendor
    assert vendor.severity is Severity.LOW  # urgency; the search's severity is "unknown"
    assert vendor.rule_level is None
    # 15680 is the risk object's accumulated score (= dest_risk_score), not this notable's 0-100 risk.
    assert vendor.risk_score is None
    assert vendor.verdict is None


@pytest.mark.parametrize("disposition, label, verdict", [
    ("disposition:1", "True Positive - Suspicious Activity", VendorVerdict.MALICIOUS),
    ("disposition:2", "Benign Positive - Suspicious But Expected", VendorVerdict.BENIGN),
    ("disposition:3", "False Positive - Incorrect Analytic Logic", VendorVerdict.FALSE_POSITIVE),
    ("disposition:4", "False Positive - Inaccurate Data", VendorVerdict.FALSE_POSITIVE),
    # No analyst decision: never benign.
    ("disposition:0", "Unassigned", None),
    ("disposition:5", "Other", None),
    ("disposition:6", "Undetermined", None),
    ("disposition:6", None, None),
    # The built-in code wins over a renamed label.
    ("disposition:6", "False Positive (pending review)", None),
    # Custom dispositions are read by their label's leading words only.
    ("disposition:7", "Benign Positive - Pen Test", VendorVerdict.BENIGN),
    ("disposition:8", "Testing", None),
    ("disposition:9", None, None),
    # Some exports carry the label in ``disposition`` itself.
    ("False Positive - Inaccurate Data", None, VendorVerdict.FALSE_POSITIVE),
    ("Undetermined", None, None),
])
def test_splunk_disposition(disposition, label, verdict):
    record = {**_sample("notable_identity_root_success_full.json"), "disposition": disposition}
    record.pop("disposition_label")
    if label is not None:
        record["disposition_label"] = label
    vendor = splunk.to_alert(record).vendor
    assert vendor.verdict is verdict
    assert vendor.verdict_text == (label or disposition)


def test_splunk_closed_status_without_a_disposition_is_not_benign():
    record = {**_sample("notable_identity_root_success_full.json"), "status": "5", "status_label": "Closed",
              "status_end": "true"}
    assert splunk.to_alert(record).vendor.verdict is None


def test_splunk_annotations_flat_or_json_string():
    flat = {**_sample("notable_identity_root_success_full.json"),
            "annotations.mitre_attack": ["T1059.001", "T1078", "bogus"],
            "annotations.mitre_attack.mitre_tactic": ["execution", "defense-evasion"]}
    vendor = splunk.to_alert(flat).vendor
    assert vendor.techniques == ["T1059.001", "T1078"] and vendor.tactics == ["execution", "defense evasion"]
    packed = {**_sample("notable_identity_root_success_full.json"),
              "annotations": json.dumps({"mitre_attack": ["T1110.003"], "nist": ["DE.CM"]})}
    assert splunk.to_alert(packed).vendor.techniques == ["T1110.003"]
    for junk in ("{" * 5000, '{"a":' + "[" * 30000 + "]" * 30000 + "}"):  # malformed; nested past recursion
        broken = {**_sample("notable_identity_root_success_full.json"), "annotations": junk}
        assert splunk.to_alert(broken).vendor.techniques == []


def test_splunk_risk_score_in_range_and_tenant_when_present():
    record = {**_sample("notable_endpoint_recurring_malware_1.json"), "risk_score": "40", "tenant": "acme"}
    alert = splunk.to_alert(record)
    assert alert.vendor.risk_score == 40.0 and alert.tenant == "acme"
    assert alert.vendor.detection_source == "Endpoint - Recurring Malware Infection - Rule"
