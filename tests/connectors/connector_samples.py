"""Shared helpers for the connector tests: shared vendor samples, golden files, fuzz strategies.

Vendor samples are read from ../shared/payloads at test time (override with
SOC_AGENT_PAYLOADS) and never copied into the repo; tests that need them are
skipped with the folder's path when it is absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import strategies as st

from connectors import MappingError
from connectors.authlog import record_from_text
from soc_agent.types import Alert

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
FIXTURES = HERE / "fixtures"
PAYLOADS = Path(os.environ.get("SOC_AGENT_PAYLOADS", HERE.parents[2] / "shared" / "payloads"))

# The Wazuh events-generator template leaves this placeholder for the replayer to fill.
_WAZUH_PLACEHOLDER = "{timestamp}"
_FILLED_TIME = "2024-02-15T19:05:11.486Z"

ATTRIBUTE_KEYS = ("command_line", "parent_process", "file_name", "user_agent", "mitre_techniques",
                  "vendor_severity_score", "outcome", "service", "invalid_user")


def sample_files(folder: str, pattern: str = "*") -> list[Path]:
    """The sample files of one payload folder (empty when the folder is absent)."""
    root = PAYLOADS / folder
    return sorted(p for p in root.glob(pattern) if p.suffix in (".json", ".ndjson", ".log")) if root.is_dir() else []


def file_lines(path: Path) -> list[bytes]:
    """The input lines a sample file stands for: one per JSON object or log line (``#`` lines skipped)."""
    if path.suffix == ".json":
        return [json.dumps(json.loads(path.read_text(encoding="utf-8"))).encode()]
    lines = []
    for raw in path.read_bytes().splitlines():
        if not raw.strip() or raw.lstrip().startswith(b"#"):
            continue
        lines.append(raw.replace(_WAZUH_PLACEHOLDER.encode(), _FILLED_TIME.encode()))
    return lines


def as_record(line: bytes) -> dict[str, Any]:
    """The record a format's detect/to_alert receives for a line (JSON object, or authlog text)."""
    stripped = line.lstrip()
    if stripped[:1] == b"{":
        return json.loads(line)
    return record_from_text(line.decode("utf-8").strip())


def sample_params(*folders_and_patterns: tuple[str, str]) -> list[Any]:
    """pytest params (one per sample file), or one skipped param naming the missing folder."""
    params = []
    for folder, pattern in folders_and_patterns:
        files = sample_files(folder, pattern)
        if not files:
            params.append(pytest.param(None, id=f"{folder}-absent", marks=pytest.mark.skip(
                reason=f"shared vendor samples not found at {PAYLOADS / folder} (set SOC_AGENT_PAYLOADS)")))
        params.extend(pytest.param(path, id=path.name) for path in files)
    return params


def summarise(alert: Alert, with_time: bool = True) -> dict[str, Any]:
    """The golden subset of a normalised alert."""
    out: dict[str, Any] = {
        "source": alert.source, "kind": alert.kind, "rule_id": alert.rule_id,
        "severity": str(alert.severity),
        "entities": [f"{e.key}|{e.role}" for e in alert.entities],
        "attributes": {k: alert.attributes[k] for k in ATTRIBUTE_KEYS if k in alert.attributes},
    }
    if with_time:
        out["timestamp"] = alert.timestamp.isoformat()
    return out


def outcome(fn: Callable[[dict[str, Any]], Alert], record: dict[str, Any]) -> Alert | MappingError:
    """Call a mapper; return its Alert or MappingError. Anything else fails the test."""
    try:
        alert = fn(record)
    except MappingError as exc:
        assert str(exc), "a MappingError always says why"
        return exc
    assert isinstance(alert, Alert)
    assert alert.timestamp.tzinfo is not None
    return alert


def golden_path(vendor: str, sample: Path) -> Path:
    """Where the golden file for a sample lives."""
    return GOLDEN / vendor / f"{sample.stem}.json"


def check_golden(vendor: str, sample: Path, mapper: Callable[[dict[str, Any]], Alert], with_time: bool = True) -> None:
    """Map every line of a sample and compare with its golden file (``{"records": [...]}``).

    A golden record is either the summary subset or ``{"error": "<substring of the MappingError>"}``.
    """
    path = golden_path(vendor, sample)
    assert path.exists(), f"no golden file {path.relative_to(HERE)} for sample {sample.name}"
    expected = json.loads(path.read_text(encoding="utf-8"))["records"]
    lines = file_lines(sample)
    assert len(lines) == len(expected), f"{sample.name}: {len(lines)} records, golden has {len(expected)}"
    for number, (line, want) in enumerate(zip(lines, expected), start=1):
        got = outcome(mapper, as_record(line))
        if "error" in want:
            assert isinstance(got, MappingError), f"{sample.name}#{number}: expected an error, got {got!r}"
            assert want["error"] in str(got), f"{sample.name}#{number}: {got}"
            continue
        assert isinstance(got, Alert), f"{sample.name}#{number}: {got}"
        assert got.raw == as_record(line), "raw keeps the whole record"
        assert summarise(got, with_time) == want, f"{sample.name}#{number}"


def shared_sample(folder: str, name: str) -> dict[str, Any]:
    """One shared vendor sample as JSON; the test is skipped when the shared samples are absent."""
    path = PAYLOADS / folder / name
    if not path.exists():
        pytest.skip(f"shared vendor sample not found: {path} (set SOC_AGENT_PAYLOADS)")
    return json.loads(path.read_text(encoding="utf-8"))


def check_vendor_golden(vendor: str, sample: Path, mapper: Callable[[dict[str, Any]], Alert]) -> None:
    """The golden file's ``vendor`` list: tenant plus ``Alert.vendor`` per record (the summary leaves both out).

    A ``null`` entry is a record that maps to an error; a file whose every record is an error has no list.
    """
    expected = json.loads(golden_path(vendor, sample).read_text(encoding="utf-8")).get("vendor")
    lines = file_lines(sample)
    if expected is None:
        assert all(isinstance(outcome(mapper, as_record(line)), MappingError) for line in lines), \
            f"golden {sample.stem} has no vendor expectations"
        return
    assert len(lines) == len(expected), sample.name
    for number, (line, want) in enumerate(zip(lines, expected), start=1):
        if want is not None:
            alert = mapper(as_record(line))
            assert {"tenant": alert.tenant, **alert.vendor.model_dump(mode="json")} == want, f"{sample.name}#{number}"


# ---- hypothesis ----------------------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                | st.text(max_size=30))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=20), json_values, max_size=8)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a nested record (dict keys and list indexes)."""
    out = []
    if isinstance(value, dict):
        for key, item in value.items():
            out.append(prefix + (key,))
            out.extend(_paths(item, prefix + (key,)))
    elif isinstance(value, list):
        for index, item in enumerate(value[:5]):
            out.append(prefix + (index,))
            out.extend(_paths(item, prefix + (index,)))
    return out


@st.composite
def mutated(draw, record: dict[str, Any]) -> dict[str, Any]:
    """A real record with fields dropped, renamed or replaced by wrong-typed values."""
    record = json.loads(json.dumps(record))
    paths = _paths(record)
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = record
        try:
            for step in path[:-1]:
                parent = parent[step]
            key = path[-1]
            action = draw(st.sampled_from(["drop", "rename", "retype"]))
            if isinstance(parent, dict) and key in parent:
                if action == "drop":
                    del parent[key]
                elif action == "rename":
                    parent[f"{key}_renamed"] = parent.pop(key)
                else:
                    parent[key] = draw(json_values)
            elif isinstance(parent, list) and isinstance(key, int) and key < len(parent):
                parent[key] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue
    return record
