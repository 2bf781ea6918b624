"""Map an Elastic Security detection alert to an Alert.

Alert documents mix flattened dotted keys (``kibana.alert.rule.name``) with
nested ECS objects (``host: {name: ...}``); ``get`` reads both. An
Elasticsearch hit (``{_id, _source}``) is unwrapped first.
"""

from __future__ import annotations

from typing import Any

from connectors._common import (
    Entities, as_list, build_alert, fail, first_text, first_time, get, number, require_dict,
    severity_band, severity_word, slug, text, vendor_fields,
)
from soc_agent.types import Alert, EntityKind, Severity

NAME = "elastic"

# Elastic's own risk-score bands (the rule editor's defaults: 21 / 47 / 73 / 99).
_RISK_BANDS = ((0, Severity.LOW), (22, Severity.MEDIUM), (48, Severity.HIGH), (74, Severity.CRITICAL))


def _body(record: dict[str, Any]) -> dict[str, Any]:
    source = record.get("_source")
    return source if isinstance(source, dict) else record


def detect(record: dict[str, Any]) -> bool:
    """A detection alert carries ``kibana.alert.rule.*`` and ``kibana.alert.uuid``."""
    body = _body(record)
    return get(body, "kibana.alert.uuid") is not None or get(body, "kibana.alert.rule.uuid") is not None


def to_alert(record: dict[str, Any]) -> Alert:
    """Map one alert document (or ES hit); MappingError says what is missing."""
    body = require_dict(_body(require_dict(record, NAME)), NAME)
    alert_id = first_text(body, "kibana.alert.uuid", limit=256) or text(record.get("_id"), 256)
    if not alert_id:
        raise fail(NAME, "no kibana.alert.uuid (or _id): not a detection alert document")
    rule_name = first_text(body, "kibana.alert.rule.name", limit=1024)
    rule_id = (first_text(body, "kibana.alert.rule.rule_id", "kibana.alert.rule.parameters.rule_id",
                          "kibana.alert.rule.uuid", limit=256)
               or (slug(rule_name) if rule_name else None))
    if not rule_id:
        raise fail(NAME, "no kibana.alert.rule.rule_id, uuid or name")
    timestamp = first_time(body, "@timestamp", "kibana.alert.start", "kibana.alert.original_time")
    if timestamp is None:
        raise fail(NAME, "no parseable @timestamp")
    risk = number(get(body, "kibana.alert.risk_score")) or number(get(body, "kibana.alert.rule.risk_score"))
    severity = (severity_word(get(body, "kibana.alert.severity"))
                or severity_word(get(body, "kibana.alert.rule.severity"))
                or severity_band(risk, _RISK_BANDS) or Severity.MEDIUM)
    return build_alert(
        NAME, record,
        id=alert_id, kind="alert", rule_id=rule_id,
        title=rule_name or rule_id,
        description=first_text(body, "kibana.alert.reason", "kibana.alert.rule.description", limit=16384) or "",
        severity=severity, timestamp=timestamp,
        entities=_entities(body), attributes=_attributes(body, risk),
        tenant=_tenant(body), vendor=_vendor(body, risk),
    )


def _tenant(body: dict[str, Any]) -> str | None:
    """The Kibana space the alert lives in stands for the tenant."""
    spaces = [s for s in (text(v, 256) for v in as_list(get(body, "kibana.space_ids"))) if s]
    return spaces[0] if spaces else None


def _vendor(body: dict[str, Any], risk: float | None) -> dict[str, Any]:
    techniques, tactics = _mitre(body)
    tags = [t.lower() for t in (text(v, 128) for v in as_list(get(body, "kibana.alert.rule.tags"))) if t]
    # Hunting rules and building blocks are leads that feed other rules, not detections on their own.
    low_fidelity = bool(get(body, "kibana.alert.building_block_type")) or any("hunting" in t for t in tags)
    verdict, confidence = _endpoint_classification(body)
    return vendor_fields(
        severity=severity_word(get(body, "kibana.alert.severity")) or severity_word(
            get(body, "kibana.alert.rule.severity")),
        risk_score=risk, tactics=tactics, techniques=techniques, verdict=verdict, confidence=confidence,
        rule_level=get(body, "kibana.alert.rule.severity"),
        false_positives=get(body, "kibana.alert.rule.false_positives"), low_fidelity=low_fidelity,
        detection_source=first_text(body, "kibana.alert.rule.type", "kibana.alert.rule.producer"),
    )


def _endpoint_classification(body: dict[str, Any]) -> tuple[str | None, float | None]:
    """Elastic Defend's own malware classifier: a file scored at or over its threshold is its malicious verdict.

    A score under the threshold (or a whitelisted identifier) says nothing either way: absence of a
    malicious score is not a benign determination.
    """
    score = number(get(body, "file.Ext.malware_classification.score"))
    threshold = number(get(body, "file.Ext.malware_classification.threshold"))
    if score is None or threshold is None or not 0 <= score <= 1 or score < threshold:
        return None, None
    return "malicious", score


def _entities(body: dict[str, Any]) -> list:
    found = Entities()
    # The monitored host is where the alert happened: role dst, as for every source.
    found.add(EntityKind.HOST, first_text(body, "host.name", "host.hostname"), "dst")
    for ip in as_list(get(body, "host.ip")):
        found.add(EntityKind.IP, ip, "dst")
    for ip in as_list(get(body, "source.ip")):
        found.add(EntityKind.IP, ip, "src")
    for ip in as_list(get(body, "destination.ip")):
        found.add(EntityKind.IP, ip, "dst")
    found.add(EntityKind.DOMAIN, get(body, "source.domain"), "src")
    found.add(EntityKind.DOMAIN, get(body, "destination.domain"), "dst")
    found.add(EntityKind.DOMAIN, get(body, "dns.question.name"), "dst")
    found.add(EntityKind.URL, get(body, "url.full") or get(body, "url.original"), "dst")
    found.add_user(get(body, "user.name"), "actor")
    found.add_user(get(body, "user.target.name"), "target")
    found.add(EntityKind.EMAIL, get(body, "user.email"), "actor")
    found.add(EntityKind.PROCESS, first_text(body, "process.executable", "process.name"), "process")
    found.add(EntityKind.PROCESS, first_text(body, "process.parent.executable", "process.parent.name"), "parent")
    found.add_hashes([get(body, f"file.hash.{algo}") for algo in ("sha256", "sha1", "md5")], "file")
    found.add_hashes([get(body, f"process.hash.{algo}") for algo in ("sha256", "sha1", "md5")], "process")
    return found.items


def _mitre(body: dict[str, Any]) -> tuple[list[str], list[str]]:
    techniques: list[str] = []
    tactics: list[str] = []
    for threat in as_list(get(body, "kibana.alert.rule.threat")):
        tactic = text(get(threat, "tactic.name"), 128)
        if tactic:
            tactics.append(tactic)
        for technique in as_list(get(threat, "technique")):
            techniques.extend(t for t in [text(get(technique, "id"), 32)] if t)
            for sub in as_list(get(technique, "subtechnique")):
                techniques.extend(t for t in [text(get(sub, "id"), 32)] if t)
    return techniques, tactics


def _attributes(body: dict[str, Any], risk: float | None) -> dict[str, Any]:
    techniques, tactics = _mitre(body)
    return {
        "command_line": first_text(body, "process.command_line"),
        "process_name": first_text(body, "process.name"),
        "parent_process": first_text(body, "process.parent.command_line", "process.parent.executable",
                                     "process.parent.name"),
        "file_name": first_text(body, "file.name"),
        "file_path": first_text(body, "file.path"),
        "user_agent": first_text(body, "user_agent.original"),
        "mitre_techniques": techniques,
        "mitre_tactics": tactics,
        "vendor_severity": first_text(body, "kibana.alert.severity"),
        "vendor_severity_score": risk,
        "outcome": first_text(body, "event.outcome"),
        "event_category": first_text(body, "event.category", "kibana.alert.original_event.category"),
        "event_action": first_text(body, "event.action", "kibana.alert.original_event.action"),
        "service": first_text(body, "service.name"),
        "rule_type": first_text(body, "kibana.alert.rule.type"),
        "rule_uuid": first_text(body, "kibana.alert.rule.uuid"),
        "workflow_status": first_text(body, "kibana.alert.workflow_status"),
        # Building-block alerts feed other rules; triage usually skips them.
        "building_block": bool(get(body, "kibana.alert.building_block_type")) or None,
        "group_id": first_text(body, "kibana.alert.group.id"),
        "url": first_text(body, "kibana.alert.url"),
    }
