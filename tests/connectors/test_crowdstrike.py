"""crowdstrike mapping: every shared sample against its golden file, vendor evidence, plus fuzzing."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector_samples import (
    as_record, check_golden, check_vendor_golden, file_lines, json_objects, mutated, outcome, sample_params,
    shared_sample,
)
from connectors import crowdstrike
from soc_agent.types import Severity, VendorVerdict

SAMPLES = sample_params(("crowdstrike", "*"))


@pytest.mark.parametrize("sample", SAMPLES)
def test_crowdstrike_sample_maps_to_golden(sample):
    check_golden("crowdstrike", sample, crowdstrike.to_alert)


@pytest.mark.parametrize("sample", SAMPLES)
def test_crowdstrike_sample_vendor_evidence_matches_golden(sample):
    check_vendor_golden("crowdstrike", sample, crowdstrike.to_alert)


@settings(max_examples=150, deadline=None)
@given(record=json_objects)
def test_crowdstrike_arbitrary_json_is_an_alert_or_mapping_error(record):
    outcome(crowdstrike.to_alert, record)
    crowdstrike.detect(record)


@pytest.mark.parametrize("sample", SAMPLES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_crowdstrike_damaged_sample_is_an_alert_or_mapping_error(sample, data):
    record = as_record(data.draw(st.sampled_from(file_lines(sample))))
    outcome(crowdstrike.to_alert, data.draw(mutated(record)))


# ---- vendor evidence -----------------------------------------------------------------------

def _sample(name: str) -> dict:
    return shared_sample("crowdstrike", name)


def _streaming(name: str, description: str | None, **flags: bool) -> dict:
    record = copy.deepcopy(_sample(name))
    record["event"]["PatternDispositionDescription"] = description
    record["event"]["PatternDispositionFlags"] = {key: False for key in record["event"].get(
        "PatternDispositionFlags", {})} | flags
    return record


def test_falcon_prevention_block_is_the_vendor_saying_malicious():
    alert = crowdstrike.to_alert(_sample("streaming_EppDetectionSummaryEvent_windows_pup_blocked.json"))
    assert alert.vendor.verdict is VendorVerdict.MALICIOUS
    assert alert.vendor.verdict_text == "Prevention, process was blocked from execution."
    assert alert.vendor.severity is Severity.LOW and alert.vendor.risk_score == 30.0
    assert alert.vendor.detection_source == "ldt"
    assert alert.tenant == "123123abcd"


@pytest.mark.parametrize("description, flags", [
    ("Prevention, process killed.", {"KillProcess": True}),
    ("Prevention, process killed.", {}),  # no flags: the Prevention category alone says it acted
    ("Detection, standard detection.", {"QuarantineFile": True}),  # the flag says what the sensor did
    ("Detection/Quarantine, standard detection and quarantine was attempted.", {}),
])
def test_falcon_kill_or_quarantine_by_the_sensor_is_malicious(description, flags):
    record = _streaming("streaming_EppDetectionSummaryEvent_sample_detection.json", description, **flags)
    alert = crowdstrike.to_alert(record)
    assert alert.vendor.verdict is VendorVerdict.MALICIOUS
    assert alert.vendor.verdict_text == description


@pytest.mark.parametrize("description, flags", [
    ("Detection, standard detection.", {}),
    # Prevention policy off: Falcon sets the flag of what it would have done, and did nothing.
    ("Detection, process would have been killed if related prevention policy setting was enabled.",
     {"KillProcess": True, "PolicyDisabled": True}),
    ("Detection, process would have been blocked if related prevention policy setting was enabled.",
     {"ProcessBlocked": True}),
    (None, {}),
])
def test_falcon_detection_without_an_action_is_no_verdict(description, flags):
    record = _streaming("streaming_EppDetectionSummaryEvent_sample_detection.json", description, **flags)
    alert = crowdstrike.to_alert(record)
    assert alert.vendor.verdict is None
    assert alert.vendor.verdict_text == description


def test_falcon_shared_samples_that_only_detected_carry_no_verdict():
    for name in ("streaming_EppDetectionSummaryEvent_linux_known_malware.json",
                 "streaming_DetectionSummaryEvent_pup_mitre.json",
                 "streaming_EppDetectionSummaryEvent_sample_detection.json"):
        alert = crowdstrike.to_alert(_sample(name))
        assert alert.vendor.verdict is None, name
        assert alert.vendor.severity is not None, name


def test_falcon_legacy_1_to_5_severity_is_a_level_not_a_risk_score():
    alert = crowdstrike.to_alert(_sample("streaming_DetectionSummaryEvent_pup_mitre.json"))
    assert alert.vendor.severity is Severity.LOW and alert.vendor.risk_score is None
    # Its MitreAttack names only Falcon's own "Malware" tactic: not ATT&CK.
    assert alert.vendor.tactics == [] and alert.vendor.techniques == []


def test_falcon_v2_maps_severity_confidence_attack_tenant_and_source():
    alert = crowdstrike.to_alert(_sample("alerts_v2_idp_identity_verification_denied.json"))
    vendor = alert.vendor
    assert vendor.severity is Severity.HIGH and vendor.risk_score == 79.0 and vendor.confidence == 0.8
    assert vendor.tactics == ["credential access"] and vendor.techniques == ["T1110"]
    assert vendor.detection_source == "idp/idp-user-endpoint-app-info"
    assert vendor.verdict is None  # status "new": nobody has decided
    assert alert.tenant == "4446934rf3fdb64ec3056ddfb96e"


def test_falcon_v2_quarantine_is_malicious_and_falcon_tactics_are_dropped():
    alert = crowdstrike.to_alert(_sample("alerts_v2_epp_ldt_pup_quarantined.json"))
    vendor = alert.vendor
    assert vendor.verdict is VendorVerdict.MALICIOUS
    assert vendor.verdict_text.startswith("Prevention/Quarantine")
    # No severity_name: Falcon's own band for 30 is Low. Confidence 10 of 100.
    assert vendor.severity is Severity.LOW and vendor.risk_score == 30.0 and vendor.confidence == pytest.approx(0.1)
    # "MachineLearning" / CST0000 are Falcon's taxonomy, not ATT&CK.
    assert vendor.tactics == [] and vendor.techniques == []
    assert vendor.detection_source == "epp/ldt"
    assert alert.tenant == "92012896127c4a948236ba7601b886b0"


def test_falcon_v2_true_positive_tag_is_the_analysts_determination():
    alert = crowdstrike.to_alert(_sample("alerts_v2_ods_closed_true_positive.json"))
    assert alert.vendor.verdict is VendorVerdict.MALICIOUS and alert.vendor.verdict_text == "true_positive"
    assert alert.tenant == "Hf4433930843f434334232432"


@pytest.mark.parametrize("change, verdict", [
    ({"tags": ["false_positive"]}, VendorVerdict.FALSE_POSITIVE),
    ({"status": "false_positive"}, VendorVerdict.FALSE_POSITIVE),
    ({"resolution": "false_positive"}, VendorVerdict.FALSE_POSITIVE),
    ({"status": "true_positive"}, VendorVerdict.MALICIOUS),
    # Ignored, closed or in progress is no determination: never benign.
    ({"status": "ignored"}, None),
    ({"status": "closed"}, None),
    ({"status": "in_progress"}, None),
    ({"tags": ["true_positive", "false_positive"]}, None),
])
def test_falcon_v2_analyst_resolution(change, verdict):
    record = {**_sample("alerts_v2_idp_identity_verification_denied.json"), **change}
    assert crowdstrike.to_alert(record).vendor.verdict is verdict


def test_falcon_v2_analyst_false_positive_outranks_the_sensors_quarantine():
    record = {**_sample("alerts_v2_epp_ldt_pup_quarantined.json"), "tags": ["False_Positive"]}
    alert = crowdstrike.to_alert(record)
    assert alert.vendor.verdict is VendorVerdict.FALSE_POSITIVE and alert.vendor.verdict_text == "false_positive"


def test_falcon_v2_mitre_attack_list_and_confidence_scale():
    record = {**_sample("alerts_v2_idp_identity_verification_denied.json"), "confidence": 1, "mitre_attack": [
        {"tactic_id": "TA0002", "tactic": "Execution", "technique_id": "T1059.001", "technique": "PowerShell"},
        {"tactic_id": "CSTA0004", "tactic": "Machine Learning", "technique_id": "CST0007"},
        "junk",
    ]}
    vendor = crowdstrike.to_alert(record).vendor
    assert vendor.tactics == ["credential access", "execution"]
    assert vendor.techniques == ["T1110", "T1059.001"]
    assert vendor.confidence == pytest.approx(0.01)  # Falcon's 1 is 1%, not 100%


def test_falcon_bad_vendor_values_are_dropped_not_fatal():
    record = {**_sample("alerts_v2_idp_identity_verification_denied.json"), "severity": 250, "severity_name": 7,
              "confidence": "high", "pattern_disposition_details": ["kill_process"], "tags": "true_positive",
              "cid": {"nested": True}, "tactic": ["x"], "pattern_disposition_description": 5}
    alert = crowdstrike.to_alert(record)
    assert alert.vendor.risk_score == 100.0 and alert.vendor.confidence is None
    assert alert.vendor.verdict is VendorVerdict.MALICIOUS  # a lone tag string is still the tag
    assert alert.tenant is None  # a cid that is not text is no tenant
