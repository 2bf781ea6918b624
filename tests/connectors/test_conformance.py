"""Conformance of every registered alert format, and auto-detection over all shared samples.

Each format must: never raise from ``detect``; produce Alerts that validate and
round-trip; be picked by auto-detection for its own samples; and never claim a
sample that belongs to another format (or to no alert format at all).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings

from connector_samples import FIXTURES, PAYLOADS, as_record, file_lines, json_objects, sample_files
from connectors import FORMATS, MappingError, parse_record
from connectors.base import AlertFormat
from connectors.generic import load_mapping
from connectors.generic.mapping import as_format
from soc_agent.types import Alert

GENERIC = as_format(load_mapping(FIXTURES / "generic_mapping.yml"))
ALL_FORMATS: dict[str, AlertFormat] = {**FORMATS, "generic": GENERIC}

# Which format owns each shared sample folder (a glob narrows a folder shared with other shapes).
OWNERS = [("elastic", "*", "elastic"), ("splunk", "*", "splunk"), ("sentinel", "*", "sentinel"),
          ("defender", "graph_*", "sentinel"), ("defender", "mde_*", "defender"),
          ("crowdstrike", "*", "crowdstrike"), ("wazuh", "*", "wazuh"),
          ("ocsf", "*", "ocsf"), ("auth_logs", "*", "authlog")]
# Shapes in those folders that are not single alerts: no format may claim them.
NOT_ALERTS = {"arm_incident_alerts_list.json", "arm_incident_entities.json",
              "arm_incident_get_closed_falsepositive.json", "graph_security_incident.json"}

NATIVE_LINE = json.dumps({"id": "n-1", "rule_id": "manual_test", "timestamp": "2024-01-01T00:00:00Z",
                          "entities": [{"kind": "ip", "value": "192.0.2.1", "role": "src"}]}).encode()
GENERIC_LINE = (FIXTURES / "generic_record.json").read_bytes().replace(b"\n", b"")


def _owned_samples() -> list:
    params = []
    for folder, pattern, owner in OWNERS:
        for path in sample_files(folder, pattern):
            expected = None if path.name in NOT_ALERTS else owner
            params.append(pytest.param(path, expected, id=f"{folder}/{path.name}"))
    if not params:
        params.append(pytest.param(None, None, marks=pytest.mark.skip(
            reason=f"shared vendor samples not found at {PAYLOADS}")))
    return params


def _all_samples() -> list:
    files = sorted(p for p in PAYLOADS.glob("*/*") if p.suffix in (".json", ".ndjson", ".log")) \
        if PAYLOADS.is_dir() else []
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"shared vendor samples not found at {PAYLOADS}"))]
    return [pytest.param(p, id=f"{p.parent.name}/{p.name}") for p in files]


def _claimants(record: dict) -> list[str]:
    return [name for name, fmt in ALL_FORMATS.items() if fmt.detect(record)]


def test_native_stays_last_so_vendor_records_are_never_read_as_native():
    assert list(FORMATS)[-1] == "native"
    assert {"elastic", "splunk", "sentinel", "crowdstrike", "defender", "wazuh", "ocsf", "authlog"} <= set(FORMATS)


@pytest.mark.parametrize("name", list(ALL_FORMATS))
@settings(max_examples=100, deadline=None)
@given(record=json_objects)
def test_detect_never_raises_on_arbitrary_dicts(name, record):
    assert ALL_FORMATS[name].detect(record) in (True, False)


def _valid(alert: Alert, name: str, record: dict) -> None:
    assert alert.source == name
    assert Alert.model_validate_json(alert.model_dump_json()) == alert
    assert alert.raw == record
    assert alert.timestamp.tzinfo is not None
    assert all(e.role for e in alert.entities), "every entity says what part it played"


@pytest.mark.parametrize("path, owner", _owned_samples())
def test_to_alert_output_validates_and_autodetect_picks_the_owner(path, owner):
    for line in file_lines(path):
        record = as_record(line)
        claimed = _claimants(record)
        if owner == "authlog" and not claimed:  # fail2ban's malformed-header cases are not syslog at all
            with pytest.raises(MappingError, match="unknown format"):
                parse_record(line)
            continue
        assert claimed == ([owner] if owner else []), f"{path.name}: claimed by {claimed}"
        if owner is None:
            continue
        try:
            alert = parse_record(line)
        except MappingError as exc:  # recognised but rejected, e.g. an sshd line that is no login
            assert str(exc).startswith(f"{owner}:"), str(exc)
            continue
        _valid(alert, owner, record)


@pytest.mark.parametrize("name, line", [("native", NATIVE_LINE), ("generic", GENERIC_LINE)])
def test_own_format_records_validate(name, line):
    record = json.loads(line)
    assert _claimants(record) == [name]
    _valid(ALL_FORMATS[name].to_alert(record), name, record)


@pytest.mark.parametrize("path", _all_samples())
def test_no_sample_is_claimed_by_two_formats(path: Path):
    for line in file_lines(path):
        claimed = _claimants(as_record(line))
        assert len(claimed) <= 1, f"{path.name}: claimed by {claimed}"


@pytest.fixture
def generic_registered():
    """The fixture generic mapping registered; the registry is restored afterwards."""
    from connectors.registry import register_generic

    before = dict(FORMATS)
    register_generic(FIXTURES / "generic_mapping.yml")
    yield
    FORMATS.clear()
    FORMATS.update(before)


MIXED = [("elastic", "elastic/alert_endpoint_security_query_rule_malware.json"),
         ("authlog", "auth_logs/crowdsec_hub_sshd_success.log"),
         ("splunk", "splunk/notable_identity_root_success_full.json"),
         ("sentinel", "sentinel/log_analytics_SecurityAlert_row.json"),
         ("crowdstrike", "crowdstrike/streaming_EppDetectionSummaryEvent_linux_known_malware.json"),
         ("sentinel", "defender/graph_alerts_v2_mde_hidden_file.json"),
         ("wazuh", "wazuh/alert_31166_shellshock_indexer_hit.json"),
         ("ocsf", "ocsf/authentication_3002_windows_4625.json"),
         ("crowdstrike", "crowdstrike/alerts_v2_idp_identity_verification_denied.json"),
         ("authlog", "auth_logs/fail2ban_sshd.log")]


def test_mixed_file_is_autodetected_line_by_line(generic_registered):
    """What ``soc-agent triage`` sees for a file mixing every format: one line each, in sequence."""
    if not PAYLOADS.is_dir():
        pytest.skip(f"shared vendor samples not found at {PAYLOADS}")
    lines, expected = [], []
    for owner, relative in MIXED:
        candidates = file_lines(PAYLOADS / relative)
        if owner == "authlog":  # the first line of the file that is a login attempt
            candidates = [c for c in candidates if b"Accepted" in c or b"Failed password" in c]
        lines.append(candidates[0])
        expected.append(owner)
    lines += [NATIVE_LINE, GENERIC_LINE]
    expected += ["native", "generic"]
    assert [parse_record(line).source for line in lines] == expected
