"""Map a Microsoft Defender for Endpoint ``/api/alerts`` object to an Alert.

The MDE API (``GET https://api.securitycenter.microsoft.com/api/alerts``,
usually with ``$expand=evidence``) returns camelCase alerts keyed by
``machineId`` and ``alertCreationTime``, a shape unlike Graph's
``alerts_v2`` (``createdDateTime``, ``@odata.type`` evidence). ``evidence``
is a list in the API; forwarders such as Elastic's split it into one record
per evidence item, so a single object is accepted too.
"""

from __future__ import annotations

from typing import Any

from connectors._common import (
    Entities, as_list, build_alert, fail, first_text, first_time, get, require_dict, severity_word, slug, text,
)
from soc_agent.types import Alert, EntityKind, Severity

NAME = "defender"

# The value Graph's serviceSource gives MDE alerts, so both APIs' alerts score alike.
_SERVICE = "microsoftDefenderForEndpoint"


def detect(record: dict[str, Any]) -> bool:
    """An MDE alert: its creation time field plus the machine it fired on (Graph alerts have neither)."""
    return "alertCreationTime" in record and ("machineId" in record or "computerDnsName" in record)


def _evidence(item: dict[str, Any], found: Entities, attributes: dict[str, Any]) -> None:
    kind = (text(item.get("entityType"), 64) or "").lower()
    if kind == "file":
        found.add_hashes([item.get("sha256"), item.get("sha1")], "file")
        attributes.setdefault("file_name", text(item.get("fileName")))
        attributes.setdefault("file_path", text(item.get("filePath")))
    elif kind == "process":
        found.add(EntityKind.PROCESS, item.get("fileName"), "process")
        found.add_hashes([item.get("sha256"), item.get("sha1")], "process")
        found.add_user(item.get("userPrincipalName") or item.get("accountName"),
                       "actor")
        attributes.setdefault("command_line", text(item.get("processCommandLine")))
        attributes.setdefault("file_name", text(item.get("fileName")))
    elif kind == "user":
        found.add_user(item.get("userPrincipalName") or item.get("accountName"),
                       "target")
    elif kind == "ip":
        found.add(EntityKind.IP, item.get("ipAddress"), "src")
    elif kind == "url":
        found.add(EntityKind.URL, item.get("url"), "dst")
    else:
        # Unknown evidence types still carry usable indicators in the common fields.
        found.add_hashes([item.get("sha256"), item.get("sha1")], "file")
        found.add(EntityKind.IP, item.get("ipAddress"), "src")
        found.add(EntityKind.URL, item.get("url"), "dst")


def to_alert(record: dict[str, Any]) -> Alert:
    """Map one MDE alert; MappingError names the missing field."""
    require_dict(record, NAME)
    alert_id = first_text(record, "id", "alertId", limit=256)
    if not alert_id:
        raise fail(NAME, "MDE alert has no id")
    title = first_text(record, "title", limit=1024)
    rule_id = first_text(record, "detectorId", limit=256) or (slug(title) if title else None)
    if not rule_id:
        raise fail(NAME, "MDE alert has no detectorId or title")
    timestamp = first_time(record, "alertCreationTime", "firstEventTime", "lastUpdateTime")
    if timestamp is None:
        raise fail(NAME, "MDE alert has no parseable alertCreationTime")
    found = Entities()
    found.add(EntityKind.HOST, record.get("computerDnsName"), "dst")
    related = record.get("relatedUser")
    if isinstance(related, dict):
        # The bare account name (no DOMAIN\\ prefix): what identity enrichers and the Graph mapping key on.
        found.add_user(related.get("userName"), "actor")
    attributes: dict[str, Any] = {}
    for item in as_list(record.get("evidence")):
        if isinstance(item, dict):
            _evidence(item, found, attributes)
    attributes.update({
        "mitre_techniques": [t for t in (text(v, 32) for v in as_list(record.get("mitreTechniques"))) if t],
        "mitre_tactics": [t for t in [first_text(record, "category")] if t],
        "vendor_severity": first_text(record, "severity"),
        "status": first_text(record, "status"),
        "classification": first_text(record, "classification"),
        "determination": first_text(record, "determination"),
        "investigation_state": first_text(record, "investigationState"),
        "detection_source": first_text(record, "detectionSource"),
        "incident_id": first_text(record, "incidentId"),
        "threat": first_text(record, "threatFamilyName", "threatName"),
        "machine_id": first_text(record, "machineId"),
        "tenant_id": first_text(record, "aadTenantId"),
        "service": _SERVICE,
    })
    return build_alert(
        NAME, record, id=alert_id, kind="alert", rule_id=rule_id, title=title or rule_id,
        description=first_text(record, "description", limit=16384) or "",
        severity=severity_word(get(record, "severity")) or Severity.MEDIUM, timestamp=timestamp,
        entities=found.items, attributes=attributes,
    )
