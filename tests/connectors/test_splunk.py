"""splunk mapping: every shared sample against its golden file, plus fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector_samples import as_record, check_golden, file_lines, json_objects, mutated, outcome, sample_params
from connectors import splunk

SAMPLES = sample_params(("splunk", "*"))


@pytest.mark.parametrize("sample", SAMPLES)
def test_splunk_sample_maps_to_golden(sample):
    check_golden("splunk", sample, splunk.to_alert)


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
