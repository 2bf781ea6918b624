"""Property tests for the input boundary: ``parse_record`` returns an Alert or raises MappingError.

Anything else escaping it (a RecursionError, a TypeError from a mapper...) would take the whole
triage run down instead of dead-lettering one line.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import FORMATS, MappingError, parse_record
from soc_agent.types import Alert, EntityKind, Severity

# ---- strategies -----------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
NATIVE_KEYS = ("id", "kind", "rule_id", "title", "description", "severity", "timestamp", "entities",
               "attributes", "source", "raw")


def _outcome(line: bytes, fmt: str = "auto") -> Alert | MappingError:
    """Parse; return the Alert or the MappingError. Any other exception fails the test."""
    try:
        alert = parse_record(line, fmt)
    except MappingError as exc:
        assert str(exc), "a MappingError always says why"
        return exc
    assert isinstance(alert, Alert)
    return alert


@st.composite
def native_shaped(draw) -> dict:
    """Records with the native keys present (so the native mapper runs) but arbitrary values."""
    record = {key: draw(json_values) for key in draw(st.sets(st.sampled_from(NATIVE_KEYS)))}
    for key in ("rule_id", "timestamp", "entities"):
        if draw(st.booleans()):
            record[key] = draw(json_values)
    return record


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-:@/", min_size=1, max_size=40)
_entity = st.fixed_dictionaries({
    "kind": st.sampled_from([str(k) for k in EntityKind]),
    "value": _token,
    "role": st.none() | st.sampled_from(["src", "dst", "actor", "file", "target"]),
})


@st.composite
def valid_native(draw) -> dict:
    ts = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31),
                           timezones=st.just(timezone.utc)))
    return {
        "id": draw(st.text(min_size=1, max_size=64)),
        "kind": draw(st.sampled_from(["alert", "event"])),
        "rule_id": draw(st.text(min_size=1, max_size=64)),
        "title": draw(st.text(max_size=100)),
        "description": draw(st.text(max_size=100)),
        "severity": draw(st.sampled_from([str(s) for s in Severity])),
        "timestamp": ts.isoformat(),
        "entities": draw(st.lists(_entity, max_size=6)),
        "attributes": draw(st.dictionaries(st.text(max_size=10), json_values, max_size=5)),
    }


# ---- never anything but an Alert or a MappingError ------------------------------------------


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_map_or_raise_mapping_error(line):
    _outcome(line)


@given(json_values)
def test_arbitrary_json_values_map_or_raise_mapping_error(value):
    _outcome(json.dumps(value).encode())


@given(native_shaped())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_native_shaped_records_with_arbitrary_values_map_or_raise_mapping_error(record):
    line = json.dumps(record).encode()
    _outcome(line)
    _outcome(line, "native")


@pytest.mark.parametrize("line", [
    pytest.param(b"[" * 50_000 + b"]" * 50_000, id="deep-array"),
    pytest.param(b'{"a":' * 20_000 + b"1" + b"}" * 20_000, id="deep-object"),
    pytest.param(b'{"id": "x", "rule_id": "r", "timestamp": "2026-01-01T00:00:00Z", "entities": [], '
                 b'"attributes": {"a": ' + b"[" * 5_000 + b"]" * 5_000 + b"}}", id="deep-native-attribute"),
])
def test_deeply_nested_json_under_the_size_limit_is_a_mapping_error(line):
    """Nesting is cheap in bytes: 100 KB of brackets is well under the limit but beyond the recursion limit."""
    assert len(line) < 256 * 1024
    with pytest.raises(MappingError):
        parse_record(line)


@pytest.mark.parametrize("depth", [300, 900])
def test_an_accepted_record_can_be_stored(depth):
    """What parse_record accepts must serialise: the pipeline stores ``alert.model_dump_json()``.

    Nesting that ``json.loads`` still decodes (under ~1000 levels) but pydantic will not serialise
    (over ~250) must be a MappingError at the boundary, not a crash later in intake.
    """
    record = {"id": "x", "rule_id": "r", "timestamp": "2026-01-01T00:00:00Z", "entities": [],
              "attributes": {"a": json.loads("[" * depth + "]" * depth)}}
    outcome = _outcome(json.dumps(record).encode())
    if isinstance(outcome, Alert):
        outcome.model_dump_json()


# ---- a valid record round-trips ---------------------------------------------------------------


@given(valid_native())
def test_a_valid_native_record_round_trips(record):
    alert = _outcome(json.dumps(record).encode())
    assert isinstance(alert, Alert), alert
    assert alert.source == "native"
    assert alert.raw == record, "the whole record is kept as evidence"
    for key in ("id", "kind", "rule_id", "title", "description", "attributes"):
        assert getattr(alert, key) == record[key], key
    assert str(alert.severity) == record["severity"]
    assert alert.timestamp == datetime.fromisoformat(record["timestamp"])
    assert [(str(e.kind), e.value, e.role) for e in alert.entities] == \
        [(e["kind"], e["value"], e["role"]) for e in record["entities"]]
    assert _outcome(json.dumps(record).encode(), "native") == alert, "forcing the format changes nothing"


def test_source_and_raw_in_the_record_cannot_be_spoofed():
    record = {"id": "a-1", "rule_id": "port_scan", "timestamp": "2026-01-01T00:00:00Z", "entities": [],
              "source": "detector", "raw": {"forged": True}}
    alert = parse_record(json.dumps(record).encode())
    assert alert.source == "native" and alert.raw == record


def test_a_missing_title_defaults_to_the_rule_id():
    record = {"id": "a-1", "rule_id": "port_scan", "timestamp": "2026-01-01T00:00:00Z", "entities": []}
    assert parse_record(json.dumps(record).encode()).title == "port_scan"


@pytest.mark.parametrize("missing", ["id", "rule_id"])
def test_forced_native_names_a_missing_required_field(missing):
    record = {"id": "a-1", "rule_id": "r", "timestamp": "2026-01-01T00:00:00Z", "entities": []}
    del record[missing]
    with pytest.raises(MappingError, match=rf"native: missing field\(s\) {missing}"):
        parse_record(json.dumps(record).encode(), "native")


# ---- size limit and format selection ---------------------------------------------------------


@given(st.integers(min_value=64, max_value=4096), st.integers(min_value=1, max_value=512))
def test_oversize_records_are_rejected_naming_the_limit(limit, over):
    ts = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    record = {"id": "big", "rule_id": "r", "timestamp": ts, "entities": [], "attributes": {"pad": ""}}
    base = len(json.dumps(record).encode())
    record["attributes"]["pad"] = "A" * max(0, limit + over - base)
    line = json.dumps(record).encode()
    assert len(line) > limit
    with pytest.raises(MappingError, match=rf"record is {len(line)} bytes, over the {limit}-byte limit"):
        parse_record(line, "auto", limit)


def test_a_record_exactly_at_the_limit_is_accepted():
    record = {"id": "edge", "rule_id": "r", "timestamp": "2026-01-01T00:00:00Z", "entities": []}
    line = json.dumps(record).encode()
    assert isinstance(parse_record(line, "auto", len(line)), Alert)


@given(st.text(min_size=1, max_size=20).filter(lambda f: f != "auto" and f not in FORMATS))
def test_forcing_an_unknown_format_names_the_known_ones(fmt):
    record = {"id": "a-1", "rule_id": "r", "timestamp": "2026-01-01T00:00:00Z", "entities": []}
    with pytest.raises(MappingError) as info:
        parse_record(json.dumps(record).encode(), fmt)
    message = str(info.value)
    assert f"unknown format {fmt!r}" in message
    assert "known: " + ", ".join(FORMATS) in message and "native" in message
