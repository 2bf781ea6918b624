"""generic format: a user-written YAML field mapping, active only when configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings

from connector_samples import FIXTURES, json_objects, mutated, outcome
from connectors import FORMATS, MappingError, parse_record
from connectors.generic import GenericMappingError, load_mapping
from connectors.generic.mapping import ENV_VAR, mapping_from_env
from connectors.registry import build_formats, register_generic

MAPPING = FIXTURES / "generic_mapping.yml"
RECORD = json.loads((FIXTURES / "generic_record.json").read_text())


@pytest.fixture
def registered():
    """The fixture mapping registered as ``generic``; the registry is restored afterwards."""
    before = dict(FORMATS)
    yield register_generic(MAPPING)
    FORMATS.clear()
    FORMATS.update(before)


def test_generic_is_inactive_until_configured():
    assert "generic" not in FORMATS
    with pytest.raises(MappingError, match="unknown format"):
        parse_record(json.dumps(RECORD).encode())


def test_registered_mapping_maps_fields_entities_and_severity(registered):
    alert = parse_record(json.dumps(RECORD).encode())
    assert (alert.source, alert.id, alert.rule_id, alert.title) == (
        "generic", "ids-0001", "2019401", "ET POLICY curl User-Agent")
    assert str(alert.severity) == "medium"  # severity 2 through severity_map
    assert alert.timestamp.isoformat() == "2024-05-01T10:00:00.500000+02:00"
    assert [(e.key, e.role) for e in alert.entities] == [
        ("ip:203.0.113.9", "src"), ("ip:10.0.0.5", "dst"), ("user:alice", "target"), ("user:bob", "target")]
    assert alert.attributes == {"service": "http", "outcome": "allowed"}
    assert alert.raw == RECORD


def test_generic_goes_after_vendors_and_before_native(registered):
    names = list(FORMATS)
    assert names[-2:] == ["generic", "native"]
    register_generic(MAPPING)  # registering again replaces, never duplicates
    assert list(FORMATS) == names


def test_missing_required_path_is_a_mapping_error_naming_it(registered):
    record = {**RECORD, "@timestamp": "not a time"}
    with pytest.raises(MappingError, match="timestamp path '@timestamp'"):
        parse_record(json.dumps(record).encode(), "generic")


def test_broken_mapping_file_names_file_and_key():
    with pytest.raises(GenericMappingError, match=r"generic_broken_mapping.yml:4: entities.0.kind"):
        load_mapping(FIXTURES / "generic_broken_mapping.yml")
    with pytest.raises(GenericMappingError, match="cannot read"):
        load_mapping(FIXTURES / "no_such_mapping.yml")


def test_env_var_names_the_mapping(monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(MAPPING))
    assert mapping_from_env().rule_id == "alert.signature_id"
    monkeypatch.setenv(ENV_VAR, "")
    assert mapping_from_env() is None


def test_registry_built_from_an_environment_places_its_mapping_before_native():
    assert "generic" not in build_formats({})
    names = list(build_formats({ENV_VAR: str(MAPPING)}))
    assert names[-2:] == ["generic", "native"]
    with pytest.raises(GenericMappingError, match="cannot read"):
        build_formats({ENV_VAR: str(FIXTURES / "no_such_mapping.yml")})


def test_importing_the_registry_reads_no_environment(tmp_path):
    # A broken mapping named in the environment fails the first use, not the import.
    script = ("import connectors.registry as r\n"
              "try:\n    r.formats()\nexcept ValueError as exc:\n    print('first use:', exc)\n")
    env = {**os.environ, ENV_VAR: str(tmp_path / "missing.yml"), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("first use:") and "missing.yml" in done.stdout


@settings(max_examples=150, deadline=None)
@given(record=json_objects)
def test_generic_arbitrary_json_is_an_alert_or_mapping_error(record):
    mapping = load_mapping(MAPPING)
    mapping.detect_record(record)
    outcome(mapping.to_alert, record)


@settings(max_examples=150, deadline=None)
@given(data=mutated(RECORD))
def test_generic_damaged_record_is_an_alert_or_mapping_error(data):
    outcome(load_mapping(MAPPING).to_alert, data)
