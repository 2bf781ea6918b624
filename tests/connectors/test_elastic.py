"""elastic mapping: every shared sample against its golden file, plus fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector_samples import as_record, check_golden, file_lines, json_objects, mutated, outcome, sample_params
from connectors import elastic

SAMPLES = sample_params(("elastic", "*"))


@pytest.mark.parametrize("sample", SAMPLES)
def test_elastic_sample_maps_to_golden(sample):
    check_golden("elastic", sample, elastic.to_alert)


@settings(max_examples=150, deadline=None)
@given(record=json_objects)
def test_elastic_arbitrary_json_is_an_alert_or_mapping_error(record):
    outcome(elastic.to_alert, record)
    elastic.detect(record)


@pytest.mark.parametrize("sample", SAMPLES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_elastic_damaged_sample_is_an_alert_or_mapping_error(sample, data):
    record = as_record(data.draw(st.sampled_from(file_lines(sample))))
    outcome(elastic.to_alert, data.draw(mutated(record)))


def _malware_alert(score, threshold=0.66):
    return {"@timestamp": "2026-11-20T10:00:00Z", "kibana.alert.uuid": "u-1", "kibana.alert.rule.name": "Endpoint",
            "kibana.alert.rule.uuid": "r-1", "kibana.alert.severity": "medium", "host": {"name": "wks-1"},
            "event": {"code": "malicious_file", "category": "malware"},
            "file": {"Ext": {"malware_classification": {"score": score, "threshold": threshold}}}}


def test_the_endpoints_own_malware_score_over_its_threshold_is_a_malicious_determination():
    from soc_agent.types import VendorVerdict

    alert = elastic.to_alert(_malware_alert(0.97))
    assert alert.vendor.verdict is VendorVerdict.MALICIOUS and alert.vendor.confidence == 0.97
    # Under the threshold, or nonsense, the classifier said nothing: never read as benign.
    for score in (0.2, 7, "high", None):
        assert elastic.to_alert(_malware_alert(score)).vendor.verdict is None
