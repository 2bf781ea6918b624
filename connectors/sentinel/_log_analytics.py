"""Log Analytics ``SecurityAlert`` rows and the Sentinel ARM ``SecurityAlert`` entity."""

from __future__ import annotations

import json
from typing import Any

from connectors._common import (
    Entities, as_list, build_alert, fail, first_text, first_time, severity_word, slug, text,
)
from soc_agent.types import Alert, EntityKind, Severity

NAME = "sentinel"

# Sentinel entities carry no direction; these defaults follow how analytics rules use them.
_ENTITY_ROLES = {"account": "actor", "host": "dst", "ip": "src", "url": "dst", "dns": "dst",
                 "filehash": "file", "file": "file", "process": "process", "mailbox": "target",
                 "azure-resource": "target", "cloud-application": "dst"}


def is_row(record: dict[str, Any]) -> bool:
    """A Log Analytics row: ``Type`` SecurityAlert, or its identifying columns."""
    if record.get("Type") == "SecurityAlert":
        return True
    return "SystemAlertId" in record and ("AlertName" in record or "AlertSeverity" in record)


def is_arm(record: dict[str, Any]) -> bool:
    """The ARM entity: ``kind`` SecurityAlert with a ``properties`` object."""
    return record.get("kind") == "SecurityAlert" and isinstance(record.get("properties"), dict)


def _json_column(record: dict[str, Any], key: str) -> Any:
    """Decode a column Log Analytics stores as a JSON string (already-decoded values pass through)."""
    value = record.get(key)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return None
    return value


def _split(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip() and part.strip() != "Unknown"]
    return [t for t in (text(v, 128) for v in as_list(value)) if t and t != "Unknown"]


def row_to_alert(record: dict[str, Any]) -> Alert:
    """Map one SecurityAlert row."""
    alert_id = first_text(record, "SystemAlertId", "VendorOriginalId", "_ItemId", limit=256)
    if not alert_id:
        raise fail(NAME, "SecurityAlert row has no SystemAlertId")
    name = first_text(record, "AlertName", "DisplayName", limit=1024)
    rule_id = first_text(record, "AlertType", limit=256) or (slug(name) if name else None)
    if not rule_id:
        raise fail(NAME, "SecurityAlert row has no AlertType or AlertName")
    timestamp = first_time(record, "TimeGenerated", "StartTime", "ProcessingEndTime")
    if timestamp is None:
        raise fail(NAME, "SecurityAlert row has no parseable TimeGenerated")
    entities = _json_column(record, "Entities")
    extended = _json_column(record, "ExtendedProperties")
    extended = extended if isinstance(extended, dict) else {}
    return build_alert(
        NAME, record, id=alert_id, kind="alert", rule_id=rule_id, title=name or rule_id,
        description=first_text(record, "Description", limit=16384) or "",
        severity=severity_word(record.get("AlertSeverity")) or Severity.MEDIUM, timestamp=timestamp,
        entities=_entities(entities), attributes={
            "mitre_tactics": _split(record.get("Tactics")),
            "mitre_techniques": _split(_json_column(record, "Techniques")),
            "vendor_severity": first_text(record, "AlertSeverity"),
            "product": first_text(record, "ProductName"),
            "provider": first_text(record, "ProviderName"),
            "status": first_text(record, "Status"),
            "start_time": first_text(record, "StartTime"),
            "end_time": first_text(record, "EndTime"),
            "command_line": text(extended.get("Command Line") or extended.get("CommandLine")),
            "entities_unparsed": record.get("Entities") if entities is None and record.get("Entities") else None,
            "extended_properties": {k: v for k, v in list(extended.items())[:50] if isinstance(v, (str, int, float))},
        },
    )


def arm_to_alert(record: dict[str, Any]) -> Alert:
    """Map the ARM SecurityAlert entity (incidents/{id}/alerts items)."""
    props = record["properties"]
    alert_id = first_text(props, "systemAlertId", limit=256) or first_text(record, "name", limit=256)
    if not alert_id:
        raise fail(NAME, "ARM SecurityAlert has no properties.systemAlertId or name")
    name = first_text(props, "alertDisplayName", "friendlyName", limit=1024)
    rule_id = first_text(props, "alertType", limit=256) or (slug(name) if name else None)
    if not rule_id:
        raise fail(NAME, "ARM SecurityAlert has no alertType or alertDisplayName")
    timestamp = first_time(props, "timeGenerated", "startTimeUtc", "processingEndTime")
    if timestamp is None:
        raise fail(NAME, "ARM SecurityAlert has no parseable timeGenerated")
    return build_alert(
        NAME, record, id=alert_id, kind="alert", rule_id=rule_id, title=name or rule_id,
        description=first_text(props, "description", limit=16384) or "",
        severity=severity_word(props.get("severity")) or Severity.MEDIUM, timestamp=timestamp,
        entities=[], attributes={
            "mitre_tactics": _split(props.get("tactics")),
            "mitre_techniques": _split(props.get("techniques")),
            "vendor_severity": first_text(props, "severity"),
            "product": first_text(props, "productName"),
            "status": first_text(props, "status"),
            "confidence": first_text(props, "confidenceLevel"),
            "start_time": first_text(props, "startTimeUtc"),
            "end_time": first_text(props, "endTimeUtc"),
        },
    )


def _entities(items: Any) -> list:
    found = Entities()
    for item in as_list(items):
        if not isinstance(item, dict):
            continue
        kind = str(item.get("Type", item.get("type", ""))).lower()
        role = _ENTITY_ROLES.get(kind)
        if kind == "account":
            upn = text(item.get("UPNSuffix"))
            name = text(item.get("Name") or item.get("AccountName"))
            found.add_user(f"{name}@{upn}" if name and upn else name, role)
        elif kind == "host":
            host = text(item.get("HostName") or item.get("NetBiosName"))
            domain = text(item.get("DnsDomain"))
            found.add(EntityKind.HOST, f"{host}.{domain}" if host and domain else host, role)
        elif kind == "ip":
            found.add(EntityKind.IP, item.get("Address"), role)
        elif kind == "url":
            found.add(EntityKind.URL, item.get("Url"), role)
        elif kind == "dns":
            found.add(EntityKind.DOMAIN, item.get("DomainName"), role)
        elif kind == "filehash":
            found.add_hashes([item.get("Value")], role)
        elif kind == "process":
            found.add(EntityKind.PROCESS, item.get("CommandLine"), role)
        elif kind == "mailbox":
            found.add(EntityKind.EMAIL, item.get("MailboxPrimaryAddress"), role)
        elif kind == "azure-resource":
            found.add(EntityKind.CLOUD_RESOURCE, item.get("ResourceId"), role)
        elif kind == "file":
            for hashed in as_list(item.get("FileHashes")):
                if isinstance(hashed, dict):
                    found.add_hashes([hashed.get("Value")], role)
    return found.items


__all__ = ["arm_to_alert", "is_arm", "is_row", "row_to_alert"]
