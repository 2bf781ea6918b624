"""defender (MDE /api/alerts) mapping: every shared mde_* sample against its golden file, plus fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector_samples import as_record, check_golden, file_lines, json_objects, mutated, outcome, sample_params
from connectors import MappingError, defender, parse_record

SAMPLES = sample_params(("defender", "mde_*"))


@pytest.mark.parametrize("sample", SAMPLES)
def test_defender_sample_maps_to_golden(sample):
    check_golden("defender", sample, defender.to_alert)


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
