"""A YAML field mapping from any JSON record to an Alert.

Example::

    id: event.id                    # dotted path (nested or dotted keys); a digest if absent
    rule_id: rule.name              # required
    timestamp: "@timestamp"         # required; ISO-8601 or epoch s/ms/us/ns
    title: rule.description
    severity: event.severity        # a word, or a number mapped through severity_map
    severity_map: {"1": low, "2": medium, "3": high}
    kind: alert                     # literal: alert | event
    detect: [rule.name, observer.vendor]   # paths that must exist (default: rule_id and timestamp)
    entities:
      - {kind: ip, role: src, path: source.ip}
      - {kind: user, role: target, path: user.name}
    attributes: {command_line: process.command_line}

Every path may hold a list; each item becomes an entity. Load errors name the
file and the offending key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors._common import (
    Entities, as_list, build_alert, digest, fail, first_text, get, parse_time, require_dict, severity_word,
    text,
)
from connectors.base import AlertFormat
from soc_agent.config_file import ConfigError, read_yaml
from soc_agent.types import Alert, EntityKind, Severity

NAME = "generic"
ENV_VAR = "SOC_AGENT_GENERIC_MAPPING"
"""Environment variable naming the mapping file the registry loads when it is first used."""


class GenericMappingError(ConfigError):
    """The mapping file is unreadable or invalid; the message names the file, line and key."""


class EntityPath(BaseModel):
    """One entity to pull from the record."""

    model_config = ConfigDict(extra="forbid")

    kind: EntityKind
    path: str = Field(min_length=1)
    role: str | None = None


class GenericMapping(BaseModel):
    """The validated YAML: Alert field -> dotted path in the record."""

    model_config = ConfigDict(extra="forbid")

    rule_id: str = Field(min_length=1)
    timestamp: str = Field(min_length=1)
    id: str | None = None
    title: str | None = None
    description: str | None = None
    severity: str | None = None
    severity_map: dict[str, Severity] = Field(default_factory=dict)
    kind: Literal["alert", "event"] = "alert"
    detect: list[str] = Field(default_factory=list)
    entities: list[EntityPath] = Field(default_factory=list)
    attributes: dict[str, str] = Field(default_factory=dict)

    def required_paths(self) -> list[str]:
        """The paths a record must have for this mapping to claim it."""
        return self.detect or [self.rule_id, self.timestamp]

    def detect_record(self, record: dict[str, Any]) -> bool:
        """True when every required path is present (and not null)."""
        return all(get(record, path) is not None for path in self.required_paths())

    def to_alert(self, record: dict[str, Any]) -> Alert:
        """Apply the mapping; a missing rule id or time is a MappingError naming the path."""
        require_dict(record, NAME)
        rule_value = first_text(record, self.rule_id, limit=256)
        if not rule_value:
            raise fail(NAME, f"rule_id path {self.rule_id!r} is missing or not text")
        timestamp = parse_time(get(record, self.timestamp))
        if timestamp is None:
            raise fail(NAME, f"timestamp path {self.timestamp!r} is missing or unparseable")
        found = Entities()
        for spec in self.entities:
            for value in as_list(get(record, spec.path)):
                found.add(spec.kind, value, spec.role)
        return build_alert(
            NAME, record, kind=self.kind, rule_id=rule_value, timestamp=timestamp,
            id=(first_text(record, self.id, limit=256) if self.id else None) or digest(record),
            title=(first_text(record, self.title, limit=1024) if self.title else None) or rule_value,
            description=(first_text(record, self.description, limit=16384) if self.description else None) or "",
            severity=self._severity(record), entities=found.items,
            attributes={name: _attribute(get(record, path)) for name, path in self.attributes.items()},
        )

    def _severity(self, record: dict[str, Any]) -> Severity:
        if not self.severity:
            return Severity.MEDIUM
        raw = text(get(record, self.severity), 64)
        if raw is None:
            return Severity.MEDIUM
        return self.severity_map.get(raw) or severity_word(raw) or Severity.MEDIUM


def _attribute(value: Any) -> Any:
    """Scalars and flat lists pass through; nested objects are kept out of attributes."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, list):
        return [v for v in value if isinstance(v, (str, int, float, bool))][:100]
    return None


def load_mapping(path: str | Path) -> GenericMapping:
    """Read and validate a mapping file; GenericMappingError names the file and the bad key."""
    doc = read_yaml(path, GenericMappingError)
    if not isinstance(doc.data, dict):
        raise GenericMappingError.at(doc.file, 1, f"a generic mapping must be a YAML mapping, got "
                                     f"{type(doc.data).__name__}")
    data = dict(doc.data)
    if isinstance(data.get("severity_map"), dict):  # YAML reads `1: low` with an int key
        data["severity_map"] = {str(k): v for k, v in data["severity_map"].items()}
    return doc.validate(GenericMapping, data=data)


def as_format(mapping: GenericMapping) -> AlertFormat:
    """The mapping as a registrable format."""
    return AlertFormat(NAME, mapping.detect_record, mapping.to_alert)


def mapping_from_env(environ: Mapping[str, str] | None = None) -> GenericMapping | None:
    """The mapping ``SOC_AGENT_GENERIC_MAPPING`` names in ``environ`` (default: this process's), or None when unset."""
    path = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    return load_mapping(path) if path else None


__all__ = ["ENV_VAR", "GenericMapping", "GenericMappingError", "as_format", "load_mapping", "mapping_from_env"]
